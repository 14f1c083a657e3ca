"""``generate`` and ``chat``: free answers to prompts, scored against reference answers by
ROUGE-L and SQuAD-style token F1 (the best reference of several), and optionally by an LLM
judge: a rung of its own (``judge:``) that grades each answer on a rubric from 1 to 5.

The judge's verdicts are answers like any other: the runner asks them through the response
cache, so a run repeated asks the judge only about answers it has not graded. Turning its
text into a score (``parse_verdict``) and the score into a metric are pure, here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from rung.models.base import ChatMessage, GenerateRequest
from rung.tasks.generative import (
    GenerativePrompt,
    RecordsSource,
    Splits,
    reference_items,
    reference_template,
    render_requests,
)
from rung.tasks.metrics import bootstrap_mean
from rung.tasks.registry import Item, TaskKind, TaskScores
from rung.tasks.text_metrics import rouge, token_f1

__all__ = [
    "ChatKind",
    "ChatTask",
    "GenerateKind",
    "GenerateTask",
    "JudgeSpec",
    "judge_requests",
    "parse_verdict",
]

DEFAULT_INSTRUCTIONS = "Answer the request helpfully and briefly."
DEFAULT_RUBRIC = (
    "Grade the ANSWER to the REQUEST against the REFERENCE answer: 5 = as correct and complete "
    "as the reference, 3 = partly right, 1 = wrong or off-topic. Reply with the grade only."
)


class JudgeSpec(BaseModel):
    """An LLM that grades each answer."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(description="The judge's model id, e.g. openai:gpt-4o-mini.")
    options: dict[str, object] = Field(default_factory=dict, description="Its backend options.")
    rubric: str = Field(default=DEFAULT_RUBRIC, description="What a grade from 1 to 5 means.")


class GenerateTask(BaseModel):
    """Answer each prompt; compared with the reference answers."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["generate"] = "generate"
    data: RecordsSource = Field(description="Prompts and reference answers (JSONL).")
    test_data: RecordsSource | None = Field(default=None, description="A separate test file.")
    judge: JudgeSpec | None = Field(default=None, description="An LLM judge; none by default.")
    splits: Splits = Field(default_factory=Splits)
    prompt: GenerativePrompt = Field(
        default_factory=lambda: GenerativePrompt(instructions=DEFAULT_INSTRUCTIONS)
    )


class ChatTask(GenerateTask):
    """A chat turn: scored as ``generate``."""

    type: Literal["chat"] = "chat"  # type: ignore[assignment]


def judge_requests(
    judge: JudgeSpec, outputs: Sequence[str | None], items: Sequence[Item[list[str]]]
) -> list[GenerateRequest]:
    """One grading request per answer."""
    return [
        GenerateRequest(
            messages=(
                ChatMessage("system", judge.rubric),
                ChatMessage(
                    "user",
                    f"REQUEST:\n{item.text}\n\nREFERENCE:\n{item.reference[0]}\n\n"
                    f"ANSWER:\n{out or ''}\n\nGrade (1-5):",
                ),
            ),
            max_tokens=4,
        )
        for out, item in zip(outputs, items, strict=True)
    ]


_GRADE = re.compile(r"[1-5]")


def parse_verdict(text: str | None) -> float | None:
    """The first grade 1-5 in the judge's reply, scaled to 0-1; None when it gave none."""
    m = _GRADE.search(text or "")
    return (int(m[0]) - 1) / 4 if m else None


class GenerateKind(TaskKind[GenerateTask, list[str]]):
    task_type: ClassVar[str] = "generate"
    Spec: ClassVar[type[BaseModel]] = GenerateTask
    primary: ClassVar[str] = "rougeL"

    def template(self) -> dict[str, Any]:
        return reference_template(self.task_type, "answer")

    def load_items(
        self, spec: GenerateTask, base_dir: Path
    ) -> tuple[list[Item[list[str]]], list[Item[list[str]]]]:
        return reference_items(spec, base_dir)

    def build_requests(
        self, spec: GenerateTask, train: Sequence[Item[list[str]]], test: Sequence[Item[list[str]]]
    ) -> list[GenerateRequest]:
        return render_requests(spec.prompt, train, test, lambda i: i.reference[0], spec.splits.seed)

    def score(
        self,
        spec: GenerateTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[list[str]]],
        *,
        resamples: int = 1000,
        seed: int = 0,
        verdicts: Sequence[str | None] | None = None,
    ) -> TaskScores:
        """``verdicts``: the judge's replies, one per answer, when the spec has a judge."""
        texts = [o or "" for o in outputs]
        metrics, per_item = rouge(
            texts, [i.reference for i in items], names=("rougeL",), resamples=resamples, seed=seed
        )
        for row, out, item in zip(per_item, texts, items, strict=True):
            row["token_f1"] = max(token_f1(out, ref) for ref in item.reference)
        metrics["token_f1"] = bootstrap_mean(
            [r["token_f1"] for r in per_item], resamples=resamples, seed=seed
        )
        extras: dict[str, float] = {}
        if verdicts is not None:
            grades = [parse_verdict(v) for v in verdicts]
            for row, grade in zip(per_item, grades, strict=True):
                if grade is not None:
                    row["judge"] = grade
            # An answer the judge did not grade counts as the lowest grade, not as missing:
            # dropping it would flatter the rungs whose answers confuse the judge.
            metrics["judge"] = bootstrap_mean(
                [g if g is not None else 0.0 for g in grades], resamples=resamples, seed=seed
            )
            extras["judge_ungraded"] = float(sum(g is None for g in grades))
        return TaskScores(per_item, metrics, self.primary, extras)

    def judge(self, spec: GenerateTask) -> tuple[str, dict[str, Any]] | None:
        return (spec.judge.model, spec.judge.options) if spec.judge is not None else None

    def judge_requests(
        self,
        spec: GenerateTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[list[str]]],
    ) -> list[GenerateRequest]:
        assert spec.judge is not None
        return judge_requests(spec.judge, outputs, items)


class ChatKind(GenerateKind):
    task_type: ClassVar[str] = "chat"
    Spec: ClassVar[type[BaseModel]] = ChatTask
