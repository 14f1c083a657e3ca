"""Asking a rung for answers, through the response cache.

``rung compare`` (which also times the answers and load-tests the rung) and ``rung distill``
(whose teacher labels a pool of texts) ask the same way: a rung answers only the requests the
cache lacks, with at most ``model.max_concurrency`` calls in flight, and it is loaded (and
trained on the task's training split) only when some answer is missing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from rung.models.base import ClassifyRequest, Model, ModelInfo, Prediction, stable_hash
from rung.responses.cache import open_cache, request_key
from rung.responses.progress import Progress, SilentProgress
from rung.tasks.classify import TaskData

__all__ = [
    "Asked",
    "Ready",
    "answer_all",
    "ask_through_cache",
    "cache_fingerprint",
    "info_from_json",
    "info_to_json",
]

OnAnswer = Callable[[int, Prediction, float], None]


def _train_hash(data: TaskData) -> str:
    return stable_hash([[ex.id, ex.text, ex.label] for ex in data.train])


def cache_fingerprint(model: Model, data: TaskData) -> str:
    """What keys a rung's answers in the response cache: the model, and for a rung that trains
    on the task, its training split."""
    fingerprint = model.fingerprint()
    if model.needs_training:
        fingerprint = stable_hash([fingerprint, _train_hash(data)])
    return fingerprint


def info_to_json(info: ModelInfo) -> dict[str, Any]:
    return {
        "params": info.params,
        "file_size_bytes": info.file_size_bytes,
        "path": info.path,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "extra": info.extra,
    }


def info_from_json(data: dict[str, Any] | None) -> ModelInfo:
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


async def answer_all(
    model: Model,
    label: str,
    todo: list[tuple[int, ClassifyRequest]],
    on_answer: OnAnswer,
    progress: Progress,
    batch_size: int,
) -> None:
    """Send the missing requests with at most ``model.max_concurrency`` calls in flight;
    ``on_answer(index, prediction, latency_ms)`` gets each answer as it arrives."""
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


class Ready:
    """Loads (and trains) a rung at most once, and only when some work needs it; what it took
    goes into ``facts`` (``load_s``, ``fit_s``, ``info``)."""

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
        self.facts["info"] = info_to_json(self.model.info())
        self.done = True


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
    cache = open_cache(use_cache)
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
            await Ready(model, data, {}, progress, label)()
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
            await answer_all(model, label, todo, on_answer, progress, 1)
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
