"""Running the rungs of a spec over the task's test set, through the response cache.

Order of work, so that a mistake costs seconds rather than an hour:
1. every model id is resolved and every rung's ``check()`` runs (files, keys, endpoints);
2. the output folder is checked before anything is computed;
3. each rung answers only the requests the cache lacks; it is loaded (and trained) only then;
4. the run folder is written in one step at the end (see ``rung.compare.results``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from rung.compare.cache import ResponseCache, request_key
from rung.compare.load import run_level, time_to_first_token
from rung.compare.probe import probe_rung, train_subset
from rung.compare.spec import CompareSpec, LoadSpec, ModelRef
from rung.config import cache_dir
from rung.errors import ModelCrashError
from rung.models import registry
from rung.models.base import ClassifyRequest, Model, ModelInfo, Prediction, stable_hash
from rung.models.profile import Pricing
from rung.models.runtime import ModelRuntime
from rung.tasks.classify import TaskData, build_requests, load_task_data

__all__ = [
    "Asked",
    "Outcome",
    "PredictionRecord",
    "Progress",
    "RungFailure",
    "RungRun",
    "SilentProgress",
    "ask_through_cache",
    "cache_fingerprint",
    "prepare",
    "run_rungs",
]


class Progress(Protocol):
    """What the runner reports while it works; the CLI draws it with Rich."""

    def rung_started(self, label: str, total: int, cached: int) -> None: ...
    def step(self, label: str, message: str) -> None: ...
    def advance(self, label: str, n: int) -> None: ...
    def rung_finished(self, label: str) -> None: ...
    def rung_failed(self, label: str, message: str) -> None: ...


class SilentProgress:
    def rung_started(self, label: str, total: int, cached: int) -> None:
        pass

    def step(self, label: str, message: str) -> None:
        pass

    def advance(self, label: str, n: int) -> None:
        pass

    def rung_finished(self, label: str) -> None:
        pass

    def rung_failed(self, label: str, message: str) -> None:
        pass


@dataclass
class PredictionRecord:
    id: str
    text: str
    gold: str
    prediction: Prediction
    latency_ms: float
    cached: bool


@dataclass
class RungRun:
    ref: ModelRef
    model_id: str
    records: list[PredictionRecord]
    throughput_per_s: float
    wall_s: float
    load_s: float | None
    fit_s: float | None
    info: ModelInfo
    cached: int
    concurrency: int
    load: list[dict[str, Any]] | None = None
    memory: dict[str, Any] | None = None
    #: how the rung is paid for (Model.billing): per token, or machine time
    billing: Pricing = "machine"


@dataclass
class Prepared:
    spec: CompareSpec
    data: TaskData
    requests: list[ClassifyRequest]
    models: list[tuple[ModelRef, Model]]


def prepare(spec: CompareSpec, base_dir: Path) -> Prepared:
    """Resolve every model and read the data; raises a RungError before any slow work."""
    models = [(ref, registry.create(ref.id, ref.options)) for ref in spec.models]
    data = load_task_data(spec.task, base_dir)
    for _, model in models:
        model.check()
    return Prepared(spec=spec, data=data, requests=build_requests(spec.task, data), models=models)


def _train_hash(data: TaskData) -> str:
    return stable_hash([[ex.id, ex.text, ex.label] for ex in data.train])


def cache_fingerprint(model: Model, data: TaskData) -> str:
    """What keys a rung's answers in the response cache: the model, and for a rung that trains
    on the task, its training split."""
    fingerprint = model.fingerprint()
    if model.needs_training:
        fingerprint = stable_hash([fingerprint, _train_hash(data)])
    return fingerprint


def _info_to_json(info: ModelInfo) -> dict[str, Any]:
    return {
        "params": info.params,
        "file_size_bytes": info.file_size_bytes,
        "path": info.path,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "extra": info.extra,
    }


def _info_from_json(data: dict[str, Any] | None) -> ModelInfo:
    if not data:
        return ModelInfo()
    return ModelInfo(
        params=data.get("params"),
        file_size_bytes=data.get("file_size_bytes"),
        path=data.get("path"),
        quantization=data.get("quantization"),
        context_length=data.get("context_length"),
        extra=dict(data.get("extra") or {}),
    )


async def _answer(
    model: Model,
    label: str,
    todo: list[tuple[int, ClassifyRequest]],
    on_answer: Any,
    progress: Progress,
    batch_size: int,
) -> None:
    """Send the missing requests with at most ``model.max_concurrency`` calls in flight."""
    limit = asyncio.Semaphore(max(1, model.max_concurrency))
    batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]

    async def one(batch: list[tuple[int, ClassifyRequest]]) -> None:
        async with limit:
            started = time.perf_counter()
            preds = await model.classify([req for _, req in batch])
            latency_ms = (time.perf_counter() - started) * 1000
        if len(preds) != len(batch):
            raise RuntimeError(
                f"{model.model_id} returned {len(preds)} answers for {len(batch)} requests"
            )
        for (index, _), pred in zip(batch, preds, strict=True):
            on_answer(index, pred, latency_ms)
        progress.advance(label, len(batch))

    tasks = [asyncio.ensure_future(one(b)) for b in batches]
    try:
        await asyncio.gather(*tasks)
    finally:
        # On an error or Ctrl-C, stop the calls still in flight: answers already stored stay.
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class _Ready:
    """Loads (and trains) a rung at most once, and only when some work needs it."""

    def __init__(
        self, model: Model, data: TaskData, facts: dict[str, Any], progress: Progress, label: str
    ) -> None:
        self.model, self.data, self.facts, self.progress, self.label = (
            model,
            data,
            facts,
            progress,
            label,
        )
        self.done = False

    async def __call__(self) -> None:
        if self.done:
            return
        self.progress.step(self.label, "loading")
        started = time.perf_counter()
        await asyncio.to_thread(self.model.load)
        self.facts["load_s"] = time.perf_counter() - started
        if self.model.needs_training:
            train = self.data.train
            self.progress.step(self.label, f"training on {len(train)} examples")
            started = time.perf_counter()
            await asyncio.to_thread(
                self.model.fit,
                [ex.text for ex in train],
                [ex.label for ex in train],
                list(self.data.labels),
            )
            self.facts["fit_s"] = time.perf_counter() - started
        self.facts["info"] = _info_to_json(self.model.info())
        self.done = True


async def _load_test(
    model: Model, requests: list[ClassifyRequest], spec: LoadSpec, progress: Progress, label: str
) -> list[dict[str, Any]]:
    levels = []
    for concurrency in spec.concurrency:
        progress.step(label, f"load test, {concurrency} concurrent")
        async with ModelRuntime(model) as runtime:
            level = await run_level(
                runtime,
                requests,
                concurrency,
                max_requests=spec.requests,
                max_seconds=spec.max_seconds,
            )
        entry = level.to_json()
        entry["ttft_ms"] = None
        if model.can_generate:
            # A smaller sample: the first token's time varies less than whole answers do.
            entry["ttft_ms"] = await time_to_first_token(
                model,
                requests,
                concurrency,
                max_requests=max(concurrency, spec.requests // 4),
                max_seconds=spec.max_seconds / 4,
            )
        levels.append(entry)
    return levels


def _train_json(data: TaskData) -> dict[str, Any]:
    return {
        "texts": [ex.text for ex in data.train],
        "labels": [ex.label for ex in data.train],
        "label_set": list(data.labels),
    }


async def _run_rung(
    ref: ModelRef,
    model: Model,
    prepared: Prepared,
    cache: ResponseCache | None,
    progress: Progress,
) -> RungRun:
    label = ref.display
    data = prepared.data
    requests = prepared.requests
    measure = prepared.spec.measure
    fingerprint = cache_fingerprint(model, data)
    keys = [request_key(fingerprint, r) for r in requests]
    stored = cache.get_many(keys) if cache else {}
    answers: dict[int, tuple[Prediction, float, bool]] = {}
    for i, key in enumerate(keys):
        if key in stored:
            answers[i] = (
                Prediction.from_json(stored[key]["prediction"]),
                stored[key]["latency_ms"],
                True,
            )
    todo = [(i, r) for i, r in enumerate(requests) if i not in answers]
    progress.rung_started(label, len(requests), len(answers))
    facts_key = f"facts:{fingerprint}"
    facts = (cache.get_fact(facts_key) if cache else None) or {}
    ready = _Ready(model, data, facts, progress, label)
    run_key = f"run:{stable_hash([fingerprint, keys])}"
    # One request per call unless the spec asks for batches: latency is then what one caller
    # waits, comparable across rungs; a batch_size option measures batched throughput instead.
    batch_size = model.max_batch if ref.options.get("batch_size") else 1
    load_key = (
        f"load:{stable_hash([fingerprint, keys, measure.load.model_dump()])}"
        if measure.load is not None
        else None
    )
    load: list[dict[str, Any]] | None = None
    if load_key is not None and cache:
        cached_load = cache.get_fact(load_key)
        load = cached_load["levels"] if cached_load is not None else None
    mem_key = f"memory:{fingerprint}"
    measure_mem = measure.memory and model.in_process
    memory: dict[str, Any] | None = cache.get_fact(mem_key) if cache and measure_mem else None

    # Native code that crashes (llama.cpp, torch) kills the process it runs in: before a rung
    # of this process is loaded here, it is loaded and asked in a fresh one, which raises
    # ModelCrashError if it dies. When memory is measured, the memory probe is that process.
    loads_here = bool(todo) or (load_key is not None and load is None)
    if model.in_process and (loads_here or (measure_mem and memory is None)):
        if measure_mem and memory is None:
            progress.step(label, "measuring memory in a fresh process")
            train = _train_json(data) if model.needs_training else None
            probed = await asyncio.to_thread(
                probe_rung, ref.id, ref.options, requests[:4], train, memory=True
            )
            memory = probed.memory
            if cache and memory is not None:
                cache.put_fact(mem_key, memory)
        else:
            progress.step(label, "loading in a fresh process first")
            split = _train_json(data)
            train = (
                train_subset(split["texts"], split["labels"], split["label_set"])
                if model.needs_training
                else None
            )
            await asyncio.to_thread(probe_rung, ref.id, ref.options, requests[:1], train)

    fresh_wall = 0.0
    if todo:
        await ready()
        if cache:
            cache.put_fact(facts_key, facts)
        progress.step(label, "answering")

        def on_answer(index: int, pred: Prediction, latency_ms: float) -> None:
            answers[index] = (pred, latency_ms, False)
            if cache:
                cache.put(
                    keys[index],
                    model.model_id,
                    {"prediction": pred.to_json(), "latency_ms": latency_ms},
                )

        started = time.perf_counter()
        await _answer(model, label, todo, on_answer, progress, batch_size)
        fresh_wall = time.perf_counter() - started
        if cache:
            cache.put_fact(run_key, {"n": len(todo), "wall_s": fresh_wall})

    # The load test and the memory probe are measurements of the rung, not answers: they are
    # kept in the cache like answers (an API rung's load test costs money), keyed by what they
    # measured, and taken again with --no-cache.
    if measure.load is not None and load is None:
        await ready()
        load = await _load_test(model, requests, measure.load, progress, label)
        if cache and load_key is not None:
            cache.put_fact(load_key, {"levels": load})
    if cache and ready.done:
        cache.put_fact(facts_key, facts)
    model.close()
    progress.rung_finished(label)
    # Throughput is measured on the answers this execution produced; a run answered wholly
    # from the cache reports the figure measured when those answers were made.
    measured = (
        {"n": len(todo), "wall_s": fresh_wall}
        if todo
        else (cache.get_fact(run_key) if cache else None)
    )
    if measured and measured["wall_s"] > 0:
        throughput = measured["n"] / measured["wall_s"]
    else:
        total_ms = sum(lat for _, lat, _ in answers.values())
        throughput = len(answers) / (total_ms / 1000) if total_ms else 0.0
    records = [
        PredictionRecord(
            id=ex.id,
            text=ex.text,
            gold=ex.label,
            prediction=answers[i][0],
            latency_ms=answers[i][1],
            cached=answers[i][2],
        )
        for i, ex in enumerate(data.test)
    ]
    return RungRun(
        ref=ref,
        model_id=model.model_id,
        records=records,
        throughput_per_s=throughput,
        wall_s=len(records) / throughput if throughput else 0.0,
        load_s=facts.get("load_s"),
        fit_s=facts.get("fit_s"),
        info=_info_from_json(facts.get("info")),
        cached=len(requests) - len(todo),
        concurrency=max(1, model.max_concurrency),
        load=load,
        memory=memory,
        billing=model.billing,
    )


@dataclass(frozen=True)
class RungFailure:
    """A rung that could not be measured: its process died (see ``rung.compare.probe``)."""

    label: str
    model_id: str
    error: str
    signal: str | None = None
    stage: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "model": self.model_id,
            "error": self.error,
            "signal": self.signal,
            "stage": self.stage,
        }


@dataclass
class Outcome:
    """The rungs measured, in the spec's order, and those that failed."""

    runs: list[RungRun]
    failures: list[RungFailure]


async def run_rungs_async(
    prepared: Prepared, *, use_cache: bool = True, progress: Progress | None = None
) -> Outcome:
    """Every rung in turn. A rung whose probe process dies by a signal is recorded as failed
    and the others still run; any other error stops the run (answers so far stay cached)."""
    progress = progress or SilentProgress()
    cache = ResponseCache(cache_dir() / "responses.sqlite") if use_cache else None
    outcome = Outcome(runs=[], failures=[])
    try:
        for ref, model in prepared.models:
            try:
                outcome.runs.append(await _run_rung(ref, model, prepared, cache, progress))
            except ModelCrashError as e:
                failure = RungFailure(ref.display, model.model_id, str(e), e.signal, e.stage)
                outcome.failures.append(failure)
                progress.rung_failed(ref.display, str(e))
            finally:
                model.close()
    finally:
        if cache:
            cache.close()
    return outcome


def run_rungs(
    prepared: Prepared, *, use_cache: bool = True, progress: Progress | None = None
) -> Outcome:
    return asyncio.run(run_rungs_async(prepared, use_cache=use_cache, progress=progress))


@dataclass
class Asked:
    """A rung's answers to a list of requests, in order, and what they took."""

    predictions: list[Prediction]
    cached: int
    fresh_seconds: float


async def ask_through_cache(
    model: Model,
    requests: Sequence[ClassifyRequest],
    data: TaskData,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
    label: str | None = None,
) -> Asked:
    """Answers from ``model`` for ``requests``, read from and stored in the response cache that
    ``rung compare`` uses, one answer at a time: what a comparison already paid for is free, and
    an interrupted run resumes without asking twice. The model is loaded (and trained on
    ``data``'s training split when it trains) only when some answer is missing."""
    progress = progress or SilentProgress()
    label = label or model.model_id
    cache = ResponseCache(cache_dir() / "responses.sqlite") if use_cache else None
    try:
        keys = [request_key(cache_fingerprint(model, data), r) for r in requests]
        stored = cache.get_many(keys) if cache else {}
        answers: dict[int, Prediction] = {
            i: Prediction.from_json(stored[k]["prediction"])
            for i, k in enumerate(keys)
            if k in stored
        }
        todo = [(i, r) for i, r in enumerate(requests) if i not in answers]
        progress.rung_started(label, len(requests), len(answers))
        fresh = 0.0
        if todo:
            await _Ready(model, data, {}, progress, label)()
            progress.step(label, "answering")

            def on_answer(index: int, pred: Prediction, latency_ms: float) -> None:
                answers[index] = pred
                if cache:
                    cache.put(
                        keys[index],
                        model.model_id,
                        {"prediction": pred.to_json(), "latency_ms": latency_ms},
                    )

            started = time.perf_counter()
            await _answer(model, label, todo, on_answer, progress, 1)
            fresh = time.perf_counter() - started
        progress.rung_finished(label)
        return Asked(
            predictions=[answers[i] for i in range(len(requests))],
            cached=len(requests) - len(todo),
            fresh_seconds=fresh,
        )
    finally:
        if cache:
            cache.close()


def rung_labels(runs: Sequence[RungRun]) -> list[str]:
    return [r.ref.display for r in runs]
