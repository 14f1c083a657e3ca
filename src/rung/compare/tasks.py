"""Running the rungs of a spec on a generative task (any registered kind but classify, whose
runner is ``rung.compare.runner``): each rung writes an answer per test item through the
response cache, the task's kind scores the answers, and the run folder gets results.json,
predictions.jsonl, the spec and report.md.

The spec is the compare spec's shape (name, task, models, measure) with a ``task:`` of any
registered type; an LLM judge (``task.judge``) is asked through the same cache, so grading
answers again costs nothing.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung import __version__
from rung.errors import SpecError, validation_message
from rung.models import registry
from rung.models.base import GenerateRequest, Model, stable_hash
from rung.responses import Progress, ResponseCache, SilentProgress, open_cache
from rung.runs.quality import Metric
from rung.runs.record import Latency, PredictionRow, Tokens
from rung.runs.spec import MeasureSpec, ModelRef
from rung.runs.task_record import TaskRungResult, TaskRunResults
from rung.tasks import metrics
from rung.tasks.registry import Item, TaskKind, kind_of, parse_task

__all__ = [
    "Answer",
    "TaskSpec",
    "answer_requests",
    "generate_key",
    "is_task_spec",
    "load_task_spec",
    "run_task",
    "write_task_run",
]


class TaskSpec(BaseModel):
    """A comparison of rungs on a task other than classify."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Name of the comparison.")
    task: dict[str, Any] = Field(description="The task: section; its type: names the kind.")
    models: list[ModelRef] = Field(min_length=1, description="The rungs.")
    measure: MeasureSpec = Field(default_factory=MeasureSpec)

    @field_validator("models", mode="before")
    @classmethod
    def _ids_as_refs(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @property
    def kind(self) -> TaskKind[Any, Any]:
        return kind_of(str(self.task.get("type", "classify")))

    def task_spec(self) -> BaseModel:
        return parse_task(self.task)


def is_task_spec(data: object) -> bool:
    """Whether a spec's YAML data has a task of a type other than classify."""
    if not isinstance(data, dict) or not isinstance(data.get("task"), dict):
        return False
    return str(data["task"].get("type", "classify")) != "classify"


def load_task_spec(data: object, source: str = "spec") -> TaskSpec:
    try:
        spec = TaskSpec.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{source}: {validation_message(e)}") from None
    spec.task_spec()  # the task: section's own errors, before any model loads
    return spec


def generate_key(model_fingerprint: str, request: GenerateRequest) -> str:
    return stable_hash(
        {
            "model": model_fingerprint,
            "kind": "generate",
            "messages": [[m.role, m.content] for m in request.messages],
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "stop": list(request.stop),
        }
    )


@dataclass
class Answer:
    text: str | None
    latency_ms: float
    tokens_in: int
    tokens_out: int
    cached: bool


async def answer_requests(
    model: Model,
    requests: list[GenerateRequest],
    cache: ResponseCache | None,
    progress: Progress,
    label: str,
) -> tuple[list[Answer], float]:
    """Every request's answer, from the cache or from the model (loaded only when some are
    missing, asked one at a time so latency is what one caller waits); and the seconds the
    fresh answers took."""
    keys = [generate_key(model.fingerprint(), r) for r in requests]
    stored = cache.get_many(keys) if cache else {}
    answers: dict[int, Answer] = {
        i: Answer(**stored[k], cached=True) for i, k in enumerate(keys) if k in stored
    }
    progress.rung_started(label, len(requests), len(answers))
    wall = 0.0
    todo = [i for i in range(len(requests)) if i not in answers]
    if todo:
        await asyncio.to_thread(model.load)
        progress.step(label, "answering")
        started = time.perf_counter()
        for i in todo:
            t0 = time.perf_counter()
            gen = await model.generate(requests[i])
            value: dict[str, Any] = {
                "text": gen.text,
                "latency_ms": (time.perf_counter() - t0) * 1000,
                "tokens_in": gen.tokens_in,
                "tokens_out": gen.tokens_out,
            }
            if cache:
                cache.put(keys[i], model.model_id, value)
            answers[i] = Answer(**value, cached=False)
            progress.advance(label, 1)
        wall = time.perf_counter() - started
    progress.rung_finished(label)
    return [answers[i] for i in range(len(requests))], wall


def _latency(values: list[float]) -> Latency:
    return Latency(
        p50=metrics.percentile(values, 50),
        p95=metrics.percentile(values, 95),
        p99=metrics.percentile(values, 99),
        mean=sum(values) / len(values) if values else 0.0,
    )


def _tokens(answers: list[Answer]) -> Tokens:
    n = max(1, len(answers))
    t_in, t_out = sum(a.tokens_in for a in answers), sum(a.tokens_out for a in answers)
    return Tokens(in_=t_in, out=t_out, in_per_request=t_in / n, out_per_request=t_out / n)


@dataclass
class TaskRun:
    results: TaskRunResults
    rows: list[PredictionRow]
    spec: TaskSpec


def _gold_text(item: Item[Any]) -> str:
    ref = item.reference
    if isinstance(ref, list):
        return " ".join(ref) if "tokens" in item.extra else " || ".join(ref)
    return ref if isinstance(ref, str) else str(ref)


async def _run(spec: TaskSpec, base_dir: Path, use_cache: bool, progress: Progress) -> TaskRun:
    kind = spec.kind
    task = spec.task_spec()
    train, test = kind.load_items(task, base_dir)
    requests = kind.build_requests(task, train, test)
    if requests and not isinstance(requests[0], GenerateRequest):
        raise SpecError(f"task type {kind.task_type!r} is run by `rung compare`'s classify runner")
    gen_requests = [r for r in requests if isinstance(r, GenerateRequest)]
    models = [(ref, registry.create(ref.id, ref.options)) for ref in spec.models]
    for ref, model in models:
        if not model.can_generate:
            raise SpecError(
                f"{ref.display} ({model.model_id}) does not generate text; the {kind.task_type} "
                "task needs generative rungs (encoders take it only after `rung tune`)"
            )
        model.check()
    judge_spec = getattr(task, "judge", None)
    judge = registry.create(judge_spec.model, judge_spec.options) if judge_spec else None
    if judge is not None:
        judge.check()
    cache = open_cache(use_cache)
    resamples = spec.measure.bootstrap
    splits = getattr(task, "splits", None)
    seed_value = splits.seed if splits is not None else 0
    rungs: list[TaskRungResult] = []
    rows: list[PredictionRow] = []
    try:
        for ref, model in models:
            try:
                answers, wall = await answer_requests(
                    model, gen_requests, cache, progress, ref.display
                )
            finally:
                model.close()
            outputs = [a.text for a in answers]
            extra: dict[str, Any] = {}
            if judge is not None and judge_spec is not None:
                from rung.tasks.generate import judge_requests

                verdicts, _ = await answer_requests(
                    judge,
                    judge_requests(judge_spec, outputs, test),
                    cache,
                    progress,
                    f"{ref.display} (judge)",
                )
                extra["verdicts"] = [v.text for v in verdicts]
            scores = kind.score(task, outputs, test, resamples=resamples, seed=seed_value, **extra)
            fresh = [a for a in answers if not a.cached]
            timed = fresh or answers
            secs = wall or sum(a.latency_ms for a in timed) / 1000
            rungs.append(
                TaskRungResult(
                    model=model.model_id,
                    label=ref.display,
                    n=len(answers),
                    quality={
                        k: Metric(value=v.value, ci95=v.ci95) for k, v in scores.metrics.items()
                    },
                    primary=scores.primary,
                    extras=scores.extras,
                    latency_ms=_latency([a.latency_ms for a in answers]),
                    tokens=_tokens(answers),
                    throughput_per_s=len(timed) / secs if secs else 0.0,
                    output_tokens_per_s=sum(a.tokens_out for a in timed) / secs if secs else 0.0,
                    cached=sum(a.cached for a in answers),
                    judge=judge.model_id if judge is not None else None,
                )
            )
            for item, answer, values in zip(test, answers, scores.per_item, strict=True):
                rows.append(
                    PredictionRow(
                        rung=ref.display,
                        model=model.model_id,
                        id=item.id,
                        text=item.text,
                        gold=_gold_text(item),
                        predicted=answer.text,
                        confidence=None,
                        scores={},
                        latency_ms=answer.latency_ms,
                        tokens_in=answer.tokens_in,
                        tokens_out=answer.tokens_out,
                        raw=answer.text,
                        generated=answer.text,
                        item_metrics=values,
                        cached=answer.cached,
                    )
                )
    finally:
        if judge is not None:
            judge.close()
        if cache:
            cache.close()
    results = TaskRunResults(
        rung_version=__version__,
        name=spec.name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        task_type=kind.task_type,
        n_train=len(train),
        n_test=len(test),
        seed=seed_value,
        rungs=rungs,
    )
    return TaskRun(results=results, rows=rows, spec=spec)


def run_task(
    spec: TaskSpec,
    base_dir: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> TaskRun:
    return asyncio.run(_run(spec, base_dir, use_cache, progress or SilentProgress()))


def write_task_run(run: TaskRun, out: Path) -> None:
    """The run folder: results.json, predictions.jsonl, spec.yaml and report.md."""
    from rung.report.tasks import task_markdown

    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(run.results.to_text(), encoding="utf-8")
    (out / "predictions.jsonl").write_text(
        "".join(row.to_line() + "\n" for row in run.rows), encoding="utf-8"
    )
    (out / "spec.yaml").write_text(
        yaml.safe_dump(run.spec.model_dump(mode="json"), sort_keys=False), encoding="utf-8"
    )
    (out / "report.md").write_text(task_markdown(run.results), encoding="utf-8")
