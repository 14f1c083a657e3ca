"""``translate``: each source sentence in the target language, scored by corpus BLEU and chrF
(sacrebleu, 0-100). chrF ranks rungs by default: on the few hundred sentences a user has, BLEU
is often 0 for every small rung (no 4-gram matches) while chrF still tells them apart."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from rung.tasks.text_metrics import bleu_chrf

__all__ = ["TranslateKind", "TranslateTask"]

DEFAULT_INSTRUCTIONS = (
    "Translate the text from {source} to {target}. Answer with the translation only."
)


class TranslateTask(BaseModel):
    """Translate each text."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["translate"] = "translate"
    data: RecordsSource = Field(description="Source sentences and one reference translation each.")
    test_data: RecordsSource | None = Field(default=None, description="A separate test file.")
    source: str = Field(description="Source language, as the prompt names it (e.g. French).")
    target: str = Field(description="Target language, as the prompt names it (e.g. English).")
    splits: Splits = Field(default_factory=Splits)
    prompt: GenerativePrompt = Field(
        default_factory=lambda: GenerativePrompt(instructions=DEFAULT_INSTRUCTIONS, max_tokens=96)
    )


class TranslateKind(TaskKind[TranslateTask, list[str]]):
    task_type: ClassVar[str] = "translate"
    Spec: ClassVar[type[BaseModel]] = TranslateTask
    primary: ClassVar[str] = "chrf"
    scales: ClassVar[Mapping[str, float]] = {"bleu": 100.0, "chrf": 100.0}

    def template(self) -> dict[str, Any]:
        return reference_template("translate", "translation") | {
            "source": "EDIT-ME-source-language",
            "target": "EDIT-ME-target-language",
        }

    def load_items(
        self, spec: TranslateTask, base_dir: Path
    ) -> tuple[list[Item[list[str]]], list[Item[list[str]]]]:
        return reference_items(spec, base_dir)

    def build_requests(
        self, spec: TranslateTask, train: Sequence[Item[list[str]]], test: Sequence[Item[list[str]]]
    ) -> list[GenerateRequest]:
        return render_requests(
            spec.prompt,
            train,
            test,
            lambda i: i.reference[0],
            spec.splits.seed,
            source=spec.source,
            target=spec.target,
        )

    def score(
        self,
        spec: TranslateTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[list[str]]],
        *,
        resamples: int = 1000,
        seed: int = 0,
    ) -> TaskScores:
        # One reference per sentence: the first listed (sacrebleu's multi-reference streams
        # would need every item to have as many).
        metrics, per_item = bleu_chrf(
            [(o or "").strip() for o in outputs],
            [i.reference[0] for i in items],
            resamples=resamples,
            seed=seed,
        )
        return TaskScores(per_item, metrics, self.primary)
