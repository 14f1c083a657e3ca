"""``rung compare`` on an ``answer`` task: every rung answers every question from the same
retrieved passages, and is scored on its answers, its citations and how grounded they are.

The passages are retrieved once per question (from ``task.index``, or from an index of
``task.documents`` built into the run folder) so that the rungs differ only in what they
write. The run folder gets ``answer-results.json`` (the metrics with bootstrap intervals and
latency per rung) and ``answers.jsonl`` (one line per rung and question), each written to a
temporary name first and then moved into place: a run that fails leaves no half-written file.

This is a module of its own, reached from ``rung compare`` when the spec's ``task.type`` is
``answer``; the classify path (``rung.compare.runner``) is untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.errors import DataError, SpecError, validation_message
from rung.models import registry
from rung.models.base import Model
from rung.rag.answer import answer_with
from rung.rag.search import INDEX_DB, Retriever
from rung.rag.stores import Hit, open_store, sqlite_url
from rung.runs.spec import ModelRef
from rung.tasks.answer import AnswerExample, AnswerTask, load_questions, score_answer, summarize
from rung.tasks.metrics import Estimate, percentile

__all__ = [
    "AnswerCompareSpec",
    "AnswerRungResult",
    "compare_answers",
    "is_answer_spec",
    "load_answer_spec",
]

RESULTS = "answer-results.json"
ANSWERS = "answers.jsonl"


class AnswerCompareSpec(BaseModel):
    """A comparison of rungs on an answer task."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Name of the comparison.")
    task: AnswerTask
    models: list[ModelRef] = Field(min_length=1, description="The rungs that answer.")
    bootstrap: int = Field(default=1000, ge=100, le=100_000, description="Bootstrap resamples.")

    @field_validator("models", mode="before")
    @classmethod
    def _ids_as_refs(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value


def is_answer_spec(path: Path) -> bool:
    """Whether the spec file at ``path`` holds an answer task (a cheap look before parsing)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False  # the classify path reports it
    task = data.get("task") if isinstance(data, dict) else None
    return isinstance(task, dict) and task.get("type") == "answer"


def load_answer_spec(path: Path) -> AnswerCompareSpec:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    try:
        return AnswerCompareSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{path}: {validation_message(e)}") from None


@dataclass
class AnswerRungResult:
    label: str
    model_id: str
    metrics: dict[str, Estimate]
    latency_ms: dict[str, float]
    tokens_in: int
    tokens_out: int
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "model": self.model_id,
            "metrics": {
                k: {"value": e.value, "ci95": list(e.ci95)} for k, e in self.metrics.items()
            },
            "latency_ms": self.latency_ms,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }


def _retriever(task: AnswerTask, base_dir: Path, out: Path) -> Retriever:
    if task.index is not None:
        location = task.index if "://" in task.index else str(base_dir / task.index)
        return Retriever.open(location)
    from rung.rag.indexer import build_index

    assert task.documents is not None
    paths = [base_dir / d for d in task.documents]
    for p in paths:
        if not p.exists():
            raise DataError(f"documents not found: {p}")
    folder = out / "index"
    folder.mkdir(parents=True, exist_ok=True)
    store = open_store(sqlite_url(folder / INDEX_DB))
    try:
        build_index(paths, store, model_id=task.embedding)
    finally:
        store.close()
    return Retriever.open(folder)


async def _answer_all(
    model: Model,
    task: AnswerTask,
    questions: list[AnswerExample],
    hits: list[list[Hit]],
) -> tuple[list[dict[str, Any]], list[float], int, int]:
    rows, latencies, tokens_in, tokens_out = [], [], 0, 0
    for example, passages in zip(questions, hits, strict=True):
        started = time.perf_counter()
        answer = await answer_with(
            model,
            example.question,
            passages,
            max_tokens=task.max_tokens,
            min_overlap=task.min_overlap,
        )
        latencies.append((time.perf_counter() - started) * 1000)
        tokens_in += answer.tokens_in
        tokens_out += answer.tokens_out
        scores = score_answer(example, passages, answer, task.k)
        rows.append(
            {
                "id": example.id,
                "question": example.question,
                "reference": example.answer,
                "answer": answer.text,
                "cited": answer.cited_ids,
                "retrieved": [h.chunk.id for h in passages],
                "grounded": answer.grounding.to_json(),
                "scores": scores,
            }
        )
    return rows, latencies, tokens_in, tokens_out


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def compare_answers(
    spec: AnswerCompareSpec,
    base_dir: Path,
    out: Path,
    progress: Callable[[str], None] = lambda message: None,
) -> list[AnswerRungResult]:
    """Run every rung of ``spec`` on its questions; write the run folder ``out``."""
    task = spec.task
    models = [(ref, registry.create(ref.id, ref.options)) for ref in spec.models]
    for ref, model in models:
        model.check()
        if not model.can_generate:
            raise SpecError(
                f"{ref.display} ({model.model_id}) does not generate text, so it cannot answer "
                "questions: remove it from models"
            )
    questions = load_questions(task.data, base_dir, task.limit)
    out.mkdir(parents=True, exist_ok=True)
    progress(f"retrieving {task.k} passages for {len(questions)} questions")
    retriever = _retriever(task, base_dir, out)
    try:
        hits = [retriever.search(q.question, task.k, task.mode) for q in questions]
    finally:
        retriever.close()
    results = []
    for ref, model in models:
        progress(f"{ref.display}: loading")
        model.load()
        try:
            progress(f"{ref.display}: answering {len(questions)} questions")
            rows, latencies, tokens_in, tokens_out = asyncio.run(
                _answer_all(model, task, questions, hits)
            )
        finally:
            model.close()
        results.append(
            AnswerRungResult(
                label=ref.display,
                model_id=model.model_id,
                metrics=summarize([r["scores"] for r in rows], resamples=spec.bootstrap),
                latency_ms={"p50": percentile(latencies, 50), "p95": percentile(latencies, 95)},
                tokens_in=tokens_in,
                tokens_out=tokens_out,
                rows=rows,
            )
        )
    document = {
        "name": spec.name,
        "task": task.model_dump(mode="json"),
        "n_questions": len(questions),
        "rungs": [r.to_json() for r in results],
    }
    lines = [
        json.dumps({"rung": r.label} | row, ensure_ascii=False) for r in results for row in r.rows
    ]
    _write_atomic(out / ANSWERS, "\n".join(lines) + "\n")
    _write_atomic(out / RESULTS, json.dumps(document, indent=2) + "\n")
    return results
