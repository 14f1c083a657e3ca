"""Running the rungs of a spec on a generative task (any registered kind but classify, whose
runner is ``rung.compare.runner``): each rung writes an answer per test item through the
response cache, the task's kind scores the answers, and the run folder gets results.json,
predictions.jsonl, the spec and the reports (``rung.app.compare`` writes it). Each rung is
measured as a classify rung is: latency and throughput, a closed-loop load test on the task's
own requests, peak memory in a fresh process (which is also the crash probe of a rung run in
this process), and the cost of 1,000 requests.

The spec is the compare spec's shape (name, task, models, measure) with a ``task:`` of any
registered type; an LLM judge (``task.judge``) is asked through the same cache, so grading
answers again costs nothing.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from rung import __version__
from rung.catalog.costs import CostSpec
from rung.compare.load import LevelResult, load_test, run_generate_level
from rung.compare.probe import probe_rung
from rung.compare.results import cost_figure, memory_estimate_mb, memory_record, record_cost
from rung.errors import ModelCrashError, RunError, SpecError, validation_message
from rung.models import registry
from rung.models.base import GenerateRequest, Model, stable_hash
from rung.responses import Progress, ResponseCache, SilentProgress, open_cache
from rung.responses.ask import info_from_json, info_to_json
from rung.runs.items import items_sha256
from rung.runs.quality import Metric, TextQuality
from rung.runs.record import (
    FailedRung,
    Latency,
    LoadLevel,
    PredictionRow,
    RungResult,
    RunResults,
    TaskSummary,
    Tokens,
)
from rung.runs.spec import (
    CheckSpec,
    MeasureSpec,
    ModelRef,
    base_urls,
    distinct_labels,
    ids_or_refs,
)
from rung.tasks import metrics
from rung.tasks.registry import Item, TaskKind, TaskScores, kind_of, parse_task

__all__ = [
    "Answer",
    "TaskSpec",
    "answer_requests",
    "generate_key",
    "gold_text",
    "is_task_spec",
    "load_task_spec",
    "run_task",
    "spec_model",
    "test_items_sha256",
]


class TaskSpec(BaseModel):
    """A comparison of rungs on a task other than classify."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="Name of the comparison.")
    task: dict[str, Any] = Field(description="The task: section; its type: names the kind.")
    models: list[ModelRef] = Field(
        min_length=1,
        description="The rungs, as ids or {id, label, options}.",
        json_schema_extra=ids_or_refs,
    )
    measure: MeasureSpec = Field(default_factory=MeasureSpec)
    cost: CostSpec = Field(default_factory=CostSpec)
    check: CheckSpec = Field(
        default_factory=CheckSpec, description="How `rung check` gates a run against a baseline."
    )

    @field_validator("models", mode="before")
    @classmethod
    def _ids_as_refs(cls, value: object) -> object:
        if isinstance(value, list):
            return [{"id": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("models")
    @classmethod
    def _unique_names(cls, models: list[ModelRef]) -> list[ModelRef]:
        return distinct_labels(models)

    def base_urls(self) -> dict[str, str]:
        return base_urls(self.models)

    def as_run(self, base_dir: Path) -> TaskSpec:
        """The spec as a run folder keeps it: the task's file paths (data, test data, an
        index folder, documents) made absolute, so the run can be read again from anywhere."""

        def absolute(value: object) -> object:
            if not isinstance(value, str) or "://" in value:
                return value
            path = Path(value)
            return str(path if path.is_absolute() else (base_dir / path).resolve())

        task = dict(self.task)
        for key in ("data", "test_data"):
            if isinstance(task.get(key), dict) and "path" in task[key]:
                task[key] = {**task[key], "path": absolute(task[key]["path"])}
        if "index" in task:
            task["index"] = absolute(task["index"])
        if isinstance(task.get("documents"), list):
            task["documents"] = [absolute(d) for d in task["documents"]]
        return self.model_copy(update={"task": task})

    @property
    def kind(self) -> TaskKind[Any, Any]:
        return kind_of(str(self.task.get("type", "classify")))

    def task_spec(self) -> BaseModel:
        return parse_task(self.task)


def spec_model(task_type: str) -> type[BaseModel]:
    """The whole spec of a ``task_type`` as one model (its ``task:`` section the kind's own),
    for the JSON schema an editor checks a spec file against (``rung schema summarize``)."""
    kind = kind_of(task_type)
    name = "".join(part.capitalize() for part in task_type.replace("-", "_").split("_"))
    return create_model(
        f"{name}Spec",
        __base__=TaskSpec,
        __doc__=f"A comparison of rungs on a {task_type} task.",
        task=(kind.Spec, Field(description=f"The {task_type} task.")),
    )


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
    #: the generation's mean token log-probability, where the backend reads it (llama.cpp);
    #: answers cached before rung recorded it have none
    mean_logprob: float | None = None

    @property
    def confidence(self) -> float | None:
        """The mean token probability: how sure the rung was of this answer."""
        return math.exp(self.mean_logprob) if self.mean_logprob is not None else None


async def answer_requests(
    model: Model,
    requests: list[GenerateRequest],
    cache: ResponseCache | None,
    progress: Progress,
    label: str,
    facts: dict[str, Any] | None = None,
    *,
    started: bool = False,
) -> tuple[list[Answer], float]:
    """Every request's answer, from the cache or from the model (loaded only when some are
    missing, asked one at a time so latency is what one caller waits); and the seconds the
    fresh answers took. The seconds loading took go into ``facts["load_s"]``."""
    keys = [generate_key(model.fingerprint(), r) for r in requests]
    stored = cache.get_many(keys) if cache else {}
    answers: dict[int, Answer] = {
        i: Answer(**stored[k], cached=True) for i, k in enumerate(keys) if k in stored
    }
    if started:  # the caller showed the rung's bar already
        progress.advance(label, len(answers))
    else:
        progress.rung_started(label, len(requests), len(answers))
    wall = 0.0
    todo = [i for i in range(len(requests)) if i not in answers]
    if todo:
        progress.step(label, "loading")
        t_load = time.perf_counter()
        await asyncio.to_thread(model.load)
        if facts is not None:
            facts["load_s"] = time.perf_counter() - t_load
        progress.step(label, "answering")
        t_answer = time.perf_counter()
        for i in todo:
            t0 = time.perf_counter()
            gen = await model.generate(requests[i])
            value: dict[str, Any] = {
                "text": gen.text,
                "latency_ms": (time.perf_counter() - t0) * 1000,
                "tokens_in": gen.tokens_in,
                "tokens_out": gen.tokens_out,
                "mean_logprob": gen.mean_logprob,
            }
            if cache:
                cache.put(keys[i], model.model_id, value)
            answers[i] = Answer(**value, cached=False)
            progress.advance(label, 1)
        wall = time.perf_counter() - t_answer
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
    results: RunResults
    rows: list[PredictionRow]
    spec: TaskSpec


def gold_text(item: Item[Any]) -> str:
    """The item's reference as predictions.jsonl's ``gold`` holds it (and the items hash)."""
    ref = item.reference
    if isinstance(ref, list):
        return " ".join(ref) if "tokens" in item.extra else " || ".join(ref)
    return ref if isinstance(ref, str) else str(ref)


def test_items_sha256(test: Sequence[Item[Any]]) -> str:
    """The identity of a task's test items, as results.json records it."""
    return items_sha256((x.id, x.text, gold_text(x)) for x in test)


@dataclass
class _Measured:
    """What a rung's run measured besides its answers: load test, memory, loading."""

    load: list[dict[str, Any]] | None
    memory: dict[str, Any] | None
    facts: dict[str, Any]
    throughput_per_s: float


async def _measure(
    ref: ModelRef,
    model: Model,
    requests: list[GenerateRequest],
    answers: list[Answer],
    wall: float,
    measure: MeasureSpec,
    cache: ResponseCache | None,
    progress: Progress,
    facts: dict[str, Any],
    memory: dict[str, Any] | None,
) -> _Measured:
    """Throughput and load test of one rung, each kept in the cache like an answer (keyed by
    what it measured) so that a rerun of an unchanged spec costs nothing."""
    label = ref.display
    fingerprint = model.fingerprint()
    keys = [generate_key(fingerprint, r) for r in requests]
    run_key = f"run:{stable_hash([fingerprint, keys])}"
    facts_key = f"facts:gen:{fingerprint}"
    loaded = "load_s" in facts  # answer_requests loaded the rung for fresh answers
    if not loaded:
        facts.update((cache.get_fact(facts_key) if cache else None) or {})
    # Throughput of the answers this execution produced; a run answered wholly from the
    # cache reports the figure measured when those answers were made.
    measured: dict[str, Any] | None
    if wall > 0:
        measured = {"n": sum(not a.cached for a in answers), "wall_s": wall}
        if cache:
            cache.put_fact(run_key, measured)
    else:
        measured = cache.get_fact(run_key) if cache else None
    if measured and measured["wall_s"] > 0:
        throughput = measured["n"] / measured["wall_s"]
    else:
        total_ms = sum(a.latency_ms for a in answers)
        throughput = len(answers) / (total_ms / 1000) if total_ms else 0.0

    load_key = _load_key(model, requests, measure)
    found = cache.get_fact(load_key) if cache and load_key else None
    load: list[dict[str, Any]] | None = found["levels"] if found is not None else None
    if measure.load is not None and load is None:
        if not loaded:
            started = time.perf_counter()
            await asyncio.to_thread(model.load)
            facts["load_s"] = time.perf_counter() - started
            loaded = True
        spec_load = measure.load

        async def level(concurrency: int) -> LevelResult:
            return await run_generate_level(
                model,
                requests,
                concurrency,
                max_requests=spec_load.requests,
                max_seconds=spec_load.max_seconds,
            )

        load = await load_test(model, requests, spec_load, progress, label, level)
        if cache and load_key is not None:
            cache.put_fact(load_key, {"levels": load})
    if loaded:
        facts["info"] = info_to_json(model.info())
        if cache:
            cache.put_fact(facts_key, facts)
    return _Measured(load=load, memory=memory, facts=facts, throughput_per_s=throughput)


def _rung_result(
    ref: ModelRef,
    model: Model,
    answers: list[Answer],
    scores: TaskScores,
    measured: _Measured,
    judge: str | None,
    spec: TaskSpec,
) -> RungResult:
    n = len(answers)
    tokens = _tokens(answers)
    info = info_from_json(measured.facts.get("info"))
    cost = cost_figure(
        model.model_id,
        model.billing,
        (tokens.in_per_request, tokens.out_per_request),
        measured.throughput_per_s,
        measured.load,
        spec.cost,
    )
    throughput = measured.throughput_per_s
    return RungResult(
        model=model.model_id,
        label=ref.display,
        n=n,
        quality=TextQuality(
            scores={k: Metric(value=v.value, ci95=v.ci95) for k, v in scores.metrics.items()},
            primary=scores.primary,
            extras=scores.extras,
            judge=judge,
            scales={k: v for k, v in spec.kind.scales.items() if k in scores.metrics},
        ),
        latency_ms=_latency([a.latency_ms for a in answers]),
        tokens=tokens,
        wall_s=n / throughput if throughput else 0.0,
        throughput_per_s=throughput,
        concurrency=1,
        load=(
            None
            if measured.load is None
            else [LoadLevel.model_validate(lv) for lv in measured.load]
        ),
        memory_mb=memory_record(
            measured.memory,
            memory_estimate_mb(model.model_id, ref.options, spec.measure.context),
            info.file_size_bytes,
        ),
        cost_usd_per_1k=cost.usd_per_1k,
        cost=record_cost(cost),
        load_s=measured.facts.get("load_s"),
        fit_s=None,
        params=info.params,
        file_size_bytes=info.file_size_bytes,
        quantization=info.quantization,
        context_length=info.context_length,
        path=info.path,
        cached=sum(a.cached for a in answers),
    )


async def _run(spec: TaskSpec, base_dir: Path, use_cache: bool, progress: Progress) -> TaskRun:
    kind = spec.kind
    task = spec.task_spec()
    # off the event loop: reading items may embed (an answer task retrieves its passages)
    train, test = await asyncio.to_thread(kind.load_items, task, base_dir)
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
    judge_ref = kind.judge(task)
    judge = registry.create(*judge_ref) if judge_ref is not None else None
    if judge is not None:
        judge.check()
    cache = open_cache(use_cache)
    resamples = spec.measure.bootstrap
    splits = getattr(task, "splits", None)
    seed_value = splits.seed if splits is not None else 0
    rungs: list[RungResult] = []
    failed: list[FailedRung] = []
    rows: list[PredictionRow] = []
    try:
        for ref, model in models:
            try:
                progress.rung_started(ref.display, len(gen_requests), 0)
                memory = await _probe(ref, model, gen_requests, spec.measure, cache, progress)
                facts: dict[str, Any] = {}
                answers, wall = await answer_requests(
                    model, gen_requests, cache, progress, ref.display, facts, started=True
                )
                measured = await _measure(
                    ref,
                    model,
                    gen_requests,
                    answers,
                    wall,
                    spec.measure,
                    cache,
                    progress,
                    facts,
                    memory,
                )
            except ModelCrashError as e:
                failed.append(
                    FailedRung(
                        label=ref.display,
                        model=model.model_id,
                        error=str(e),
                        signal=e.signal,
                        stage=e.stage,
                    )
                )
                progress.rung_failed(ref.display, str(e))
                continue
            finally:
                model.close()
            outputs = [a.text for a in answers]
            extra: dict[str, Any] = {}
            if judge is not None:
                verdicts, _ = await answer_requests(
                    judge,
                    kind.judge_requests(task, outputs, test),
                    cache,
                    progress,
                    f"{ref.display} (judge)",
                )
                extra["verdicts"] = [v.text for v in verdicts]
            scores = kind.score(task, outputs, test, resamples=resamples, seed=seed_value, **extra)
            rungs.append(
                _rung_result(
                    ref,
                    model,
                    answers,
                    scores,
                    measured,
                    judge.model_id if judge is not None else None,
                    spec,
                )
            )
            none: list[None] = [None] * len(test)
            details: Sequence[dict[str, Any] | None] = scores.details or none
            # the task's own reading of its answers (an answer's grounding), else the rung's
            sure: Sequence[float | None] = scores.confidence or [a.confidence for a in answers]
            for item, answer, values, detail, confidence in zip(
                test, answers, scores.per_item, details, sure, strict=True
            ):
                rows.append(
                    PredictionRow(
                        rung=ref.display,
                        model=model.model_id,
                        id=item.id,
                        text=item.text,
                        gold=gold_text(item),
                        predicted=answer.text,
                        confidence=confidence,
                        scores={},
                        latency_ms=round(answer.latency_ms, 3),
                        tokens_in=answer.tokens_in,
                        tokens_out=answer.tokens_out,
                        raw=answer.text,
                        generated=answer.text,
                        item_metrics=values,
                        cached=answer.cached,
                        details=detail,
                    )
                )
    finally:
        if judge is not None:
            judge.close()
        if cache:
            cache.close()
    if not rungs:
        reasons = "; ".join(f.error for f in failed)
        raise RunError(f"no rung could be measured, so no run was written: {reasons}")
    results = RunResults(
        rung_version=__version__,
        name=spec.name,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        task=TaskSummary(
            type=kind.task_type,
            n_train=len(train),
            n_test=len(test),
            seed=seed_value,
            data=_data_path(task, base_dir),
            items_sha256=test_items_sha256(test),
        ),
        rungs=rungs,
        failed=failed,
    )
    return TaskRun(results=results, rows=rows, spec=spec)


def _data_path(task: BaseModel, base_dir: Path) -> str:
    data = getattr(task, "data", None)
    path = getattr(data, "path", None)
    if isinstance(path, Path):
        return str(path if path.is_absolute() else (base_dir / path).resolve())
    return str(base_dir.resolve())


def _load_key(model: Model, requests: list[GenerateRequest], measure: MeasureSpec) -> str | None:
    if measure.load is None:
        return None
    fingerprint = model.fingerprint()
    keys = [generate_key(fingerprint, r) for r in requests]
    return f"load:gen:{stable_hash([fingerprint, keys, measure.load.model_dump()])}"


async def _probe(
    ref: ModelRef,
    model: Model,
    requests: list[GenerateRequest],
    measure: MeasureSpec,
    cache: ResponseCache | None,
    progress: Progress,
) -> dict[str, Any] | None:
    """The rung's memory reading (cached, or measured in a fresh process), and before an
    in-process rung loads here, proof that it loads and answers without killing its process:
    native code that crashes (llama.cpp, torch) raises ModelCrashError from the fresh process,
    and the other rungs still run. The memory probe, when memory is measured, is that process."""
    if not model.in_process:
        return None
    fingerprint = model.fingerprint()
    mem_key = f"memory:gen:{fingerprint}"
    memory = cache.get_fact(mem_key) if cache and measure.memory else None
    if measure.memory and memory is None:
        progress.step(ref.display, "measuring memory in a fresh process")
        probed = await asyncio.to_thread(
            probe_rung, ref.id, ref.options, (), None, generate=True, memory=True
        )
        if cache and probed.memory is not None:
            cache.put_fact(mem_key, probed.memory)
        return probed.memory
    keys = [generate_key(fingerprint, r) for r in requests]
    load_key = _load_key(model, requests, measure)
    loads_here = cache is None or len(cache.get_many(keys)) < len(keys)
    if not loads_here and cache is not None and load_key is not None:
        loads_here = cache.get_fact(load_key) is None
    if loads_here:
        progress.step(ref.display, "loading in a fresh process first")
        await asyncio.to_thread(probe_rung, ref.id, ref.options, (), None, generate=True)
    return memory


def run_task(
    spec: TaskSpec,
    base_dir: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> TaskRun:
    return asyncio.run(_run(spec, base_dir, use_cache, progress or SilentProgress()))
