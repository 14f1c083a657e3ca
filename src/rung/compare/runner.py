"""Running the rungs of a spec over the task's test set, through the response cache.

Order of work, so that a mistake costs seconds rather than an hour:
1. every model id is resolved and every rung's ``check()`` runs (files, keys, endpoints);
2. the output folder is checked before anything is computed;
3. each rung answers only the requests the cache lacks; it is loaded (and trained) only then;
4. the run folder is written in one step at the end (``rung.runs.RunFolder``).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.compare.calibrate import CalibrationPlan, Chosen, plan_calibration
from rung.compare.load import LevelResult, load_test, run_level
from rung.compare.probe import probe_rung, train_subset
from rung.errors import ModelCrashError
from rung.models import registry
from rung.models.base import ClassifyRequest, Model, ModelInfo, Prediction, stable_hash
from rung.models.profile import Pricing
from rung.models.runtime import ModelRuntime
from rung.responses import (
    Progress,
    Ready,
    ResponseCache,
    SilentProgress,
    answer_all,
    cache_fingerprint,
    open_cache,
    request_key,
)
from rung.responses.ask import info_from_json
from rung.runs.spec import CompareSpec, LoadSpec, ModelRef
from rung.tasks.classify import TaskData, build_requests, load_task_data

__all__ = [
    "Outcome",
    "PredictionRecord",
    "Prepared",
    "RungFailure",
    "RungRun",
    "prepare",
    "run_rungs",
]


@dataclass
class PredictionRecord:
    id: str
    text: str
    gold: str
    prediction: Prediction
    latency_ms: float
    cached: bool
    #: the answer before calibration, in the labels' names; None when it was not calibrated
    raw: Prediction | None = None


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
    #: the words the rung was asked with and the correction of its scores (compare.calibrate)
    calibration: dict[str, Any] | None = None
    #: training examples asked to choose them (not counted in the test set's figures)
    calibration_requests: int = 0


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


async def _load_test(
    model: Model, requests: list[ClassifyRequest], spec: LoadSpec, progress: Progress, label: str
) -> list[dict[str, Any]]:
    async def level(concurrency: int) -> LevelResult:
        async with ModelRuntime(model) as runtime:
            return await run_level(
                runtime,
                requests,
                concurrency,
                max_requests=spec.requests,
                max_seconds=spec.max_seconds,
            )

    return await load_test(model, requests, spec, progress, label, level)


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
    measure = prepared.spec.measure
    fingerprint = cache_fingerprint(model, data)

    # A generative rung is first asked training examples to choose its words and calibration
    # (rung.compare.calibrate); the test requests are then asked in the chosen words.
    plan = plan_calibration(prepared.spec.task, data, model)
    calib_requests = plan.requests() if isinstance(plan, CalibrationPlan) else []
    calib_keys = [request_key(fingerprint, r) for r in calib_requests]
    calib_stored = cache.get_many(calib_keys) if cache and calib_keys else {}
    calib_answers = {
        i: Prediction.from_json(calib_stored[k]["prediction"])
        for i, k in enumerate(calib_keys)
        if k in calib_stored
    }
    chosen: Chosen | None = None
    if isinstance(plan, Chosen):
        chosen = plan
    elif len(calib_answers) == len(calib_requests):
        chosen = plan.choose([calib_answers[i] for i in range(len(calib_requests))])

    requests: list[ClassifyRequest] = []
    keys: list[str] = []
    answers: dict[int, tuple[Prediction, float, bool]] = {}
    todo: list[tuple[int, ClassifyRequest]] = []

    def lookup(chosen: Chosen) -> None:
        """The test requests in the chosen words, and which of them the cache answers."""
        requests[:] = chosen.requests(prepared.spec.task, data)
        keys[:] = [request_key(fingerprint, r) for r in requests]
        stored = cache.get_many(keys) if cache else {}
        for i, key in enumerate(keys):
            if key in stored:
                answers[i] = (
                    Prediction.from_json(stored[key]["prediction"]),
                    stored[key]["latency_ms"],
                    True,
                )
        todo[:] = [(i, r) for i, r in enumerate(requests) if i not in answers]

    if chosen is not None:
        lookup(chosen)
    n_test = len(data.test)
    progress.rung_started(label, len(calib_requests) + n_test, len(calib_answers) + len(answers))
    facts_key = f"facts:{fingerprint}"
    facts = (cache.get_fact(facts_key) if cache else None) or {}
    ready = Ready(model, data, facts, progress, label)
    # One request per call unless the spec asks for batches: latency is then what one caller
    # waits, comparable across rungs; a batch_size option measures batched throughput instead.
    batch_size = model.max_batch if ref.options.get("batch_size") else 1

    def measurement_keys() -> tuple[str, str | None]:
        run_key = f"run:{stable_hash([fingerprint, keys])}"
        load_key = (
            f"load:{stable_hash([fingerprint, keys, measure.load.model_dump()])}"
            if measure.load is not None
            else None
        )
        return run_key, load_key

    def cached_load(load_key: str | None) -> list[dict[str, Any]] | None:
        if load_key is None or not cache:
            return None
        found = cache.get_fact(load_key)
        return found["levels"] if found is not None else None

    run_key, load_key = measurement_keys()
    load = cached_load(load_key) if chosen is not None else None
    mem_key = f"memory:{fingerprint}"
    measure_mem = measure.memory and model.in_process
    memory: dict[str, Any] | None = cache.get_fact(mem_key) if cache and measure_mem else None

    # Native code that crashes (llama.cpp, torch) kills the process it runs in: before a rung
    # of this process is loaded here, it is loaded and asked in a fresh one, which raises
    # ModelCrashError if it dies. When memory is measured, the memory probe is that process.
    loads_here = chosen is None or bool(todo) or (load_key is not None and load is None)
    probe_requests = requests or prepared.requests
    if model.in_process and (loads_here or (measure_mem and memory is None)):
        if measure_mem and memory is None:
            progress.step(label, "measuring memory in a fresh process")
            train = _train_json(data) if model.needs_training else None
            probed = await asyncio.to_thread(
                probe_rung, ref.id, ref.options, probe_requests[:4], train, memory=True
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
            await asyncio.to_thread(probe_rung, ref.id, ref.options, probe_requests[:1], train)

    def store(key: str, pred: Prediction, latency_ms: float) -> None:
        if cache:
            cache.put(key, model.model_id, {"prediction": pred.to_json(), "latency_ms": latency_ms})

    async def loaded() -> None:
        await ready()
        if cache:
            cache.put_fact(facts_key, facts)

    if chosen is None:
        assert isinstance(plan, CalibrationPlan)
        await loaded()
        progress.step(
            label, f"choosing words and calibration on {len(plan.examples)} training examples"
        )
        missing = [(i, r) for i, r in enumerate(calib_requests) if i not in calib_answers]

        def on_calibration_answer(index: int, pred: Prediction, latency_ms: float) -> None:
            calib_answers[index] = pred
            store(calib_keys[index], pred, latency_ms)

        await answer_all(model, label, missing, on_calibration_answer, progress, batch_size)
        chosen = plan.choose([calib_answers[i] for i in range(len(calib_requests))])
        lookup(chosen)
        progress.advance(label, len(answers))
        run_key, load_key = measurement_keys()
        load = cached_load(load_key)

    fresh_wall = 0.0
    if todo:
        await loaded()
        progress.step(label, "answering")

        def on_answer(index: int, pred: Prediction, latency_ms: float) -> None:
            answers[index] = (pred, latency_ms, False)
            store(keys[index], pred, latency_ms)

        started = time.perf_counter()
        await answer_all(model, label, todo, on_answer, progress, batch_size)
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
    records = []
    for i, ex in enumerate(data.test):
        raw, calibrated = chosen.correct(answers[i][0])
        records.append(
            PredictionRecord(
                id=ex.id,
                text=ex.text,
                gold=ex.label,
                prediction=calibrated,
                latency_ms=answers[i][1],
                cached=answers[i][2],
                raw=raw if calibrated is not raw else None,
            )
        )
    return RungRun(
        ref=ref,
        model_id=model.model_id,
        records=records,
        throughput_per_s=throughput,
        wall_s=len(records) / throughput if throughput else 0.0,
        load_s=facts.get("load_s"),
        fit_s=facts.get("fit_s"),
        info=info_from_json(facts.get("info")),
        cached=len(requests) - len(todo),
        concurrency=max(1, model.max_concurrency),
        load=load,
        memory=memory,
        billing=model.billing,
        calibration=chosen.detail,
        calibration_requests=len(calib_requests),
    )


@dataclass(frozen=True)
class RungFailure:
    """A rung that could not be measured: its process died (see ``rung.compare.probe``)."""

    label: str
    model_id: str
    error: str
    signal: str | None = None
    stage: str | None = None


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
    cache = open_cache(use_cache)
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
