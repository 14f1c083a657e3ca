"""``summarize``: a summary of each text, scored by ROUGE-1/2/L F-measure against the
references (the best of several by default, as the DialogSum paper reports; ``mean`` on
request) and by its length beside theirs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from rung.models.base import GenerateRequest
from rung.tasks.generative import (
    GenerativePrompt,
    RecordsSource,
    Splits,
    reference_items,
    reference_template,
    render_requests,
)
from rung.tasks.registry import Item, TaskKind, TaskScores
from rung.tasks.text_metrics import rouge

__all__ = ["SummarizeKind", "SummarizeTask"]

DEFAULT_INSTRUCTIONS = "Summarize the text in one or two sentences. Answer with the summary only."


class SummarizeTask(BaseModel):
    """Write a short summary of each text."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["summarize"] = "summarize"
    data: RecordsSource = Field(description="Texts and their reference summaries (JSONL).")
    test_data: RecordsSource | None = Field(default=None, description="A separate test file.")
    references: Literal["max", "mean"] = Field(
        default="max",
        description="With several references per text: score against the best one, or their mean.",
    )
    splits: Splits = Field(default_factory=Splits)
    prompt: GenerativePrompt = Field(
        default_factory=lambda: GenerativePrompt(instructions=DEFAULT_INSTRUCTIONS, max_tokens=96)
    )


def words(text: str | None) -> int:
    return len((text or "").split())


class SummarizeKind(TaskKind[SummarizeTask, list[str]]):
    task_type: ClassVar[str] = "summarize"
    Spec: ClassVar[type[BaseModel]] = SummarizeTask
    primary: ClassVar[str] = "rougeL"

    def template(self) -> dict[str, Any]:
        return reference_template("summarize", "summary")

    def load_items(
        self, spec: SummarizeTask, base_dir: Path
    ) -> tuple[list[Item[list[str]]], list[Item[list[str]]]]:
        return reference_items(spec, base_dir)

    def build_requests(
        self, spec: SummarizeTask, train: Sequence[Item[list[str]]], test: Sequence[Item[list[str]]]
    ) -> list[GenerateRequest]:
        return render_requests(spec.prompt, train, test, lambda i: i.reference[0], spec.splits.seed)

    def score(
        self,
        spec: SummarizeTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[list[str]]],
        *,
        resamples: int = 1000,
        seed: int = 0,
    ) -> TaskScores:
        metrics, per_item = rouge(
            [o or "" for o in outputs],
            [i.reference for i in items],
            aggregate=spec.references,
            resamples=resamples,
            seed=seed,
        )
        ref_words = [sum(map(words, i.reference)) / max(1, len(i.reference)) for i in items]
        for row, out in zip(per_item, outputs, strict=True):
            row["words"] = float(words(out))
        n = max(1, len(items))
        mean_words = sum(r["words"] for r in per_item) / n
        mean_ref = sum(ref_words) / n
        extras = {
            "words": mean_words,
            "reference_words": mean_ref,
            "length_ratio": mean_words / mean_ref if mean_ref else 0.0,
            "empty": float(sum(not (o or "").strip() for o in outputs)),
        }
        return TaskScores(per_item, metrics, self.primary, extras)
