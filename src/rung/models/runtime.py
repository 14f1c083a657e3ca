"""The serving path of a loaded model: many concurrent callers, one model.

Callers ``await runtime.classify(request)`` from any number of tasks. Requests wait in a queue;
one dispatcher takes what has gathered (up to ``max_batch``, waiting at most ``max_wait_ms`` for
more once the first arrived) and hands it to the backend as one batch. So a llama.cpp rung,
whose state is not safe to share, answers one batch at a time and is never called
concurrently, while an encoder rung turns concurrent single requests into one forward pass
(micro-batching). Backends that are safe to call concurrently (``max_concurrency > 1``, remote
APIs) get that many batches in flight.

A rung that does not batch (``max_batch`` 1: llama.cpp, transformers, APIs) has nothing to
gather, so its callers skip the queue and call the backend themselves, at most
``max_concurrency`` at a time. The same order and limits, one task switch less each way: against
an API at 64 concurrent users that hop cost a quarter of the client's CPU (httpx's connection pool
scans its idle connections on every request, and a detour leaves them idle longer).

The load test of ``rung compare`` and the server drive local rungs through this same class, so
the figures a comparison reports are the ones users of the server see.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

from rung.models.base import ClassifyRequest, Model, Prediction

__all__ = ["BatchPolicy", "ModelRuntime"]


@dataclass(frozen=True)
class BatchPolicy:
    max_batch: int = 1
    max_wait_ms: float = 0.0

    @classmethod
    def for_model(cls, model: Model) -> BatchPolicy:
        """Micro-batch rungs that gain from batches (``Model.max_batch``: an encoder's
        ``batch_size`` option); send everything else one request at a time."""
        size = max(1, model.max_batch)
        return cls(max_batch=size, max_wait_ms=2.0 if size > 1 else 0.0)


@dataclass
class _Pending:
    request: ClassifyRequest
    future: asyncio.Future[Prediction]


class ModelRuntime:
    """Queue and dispatchers (or, for a rung that does not batch, slots) in front of one loaded
    model, bound to the running event loop."""

    def __init__(self, model: Model, policy: BatchPolicy | None = None) -> None:
        self.model = model
        self.policy = policy or BatchPolicy.for_model(model)
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        # The unbatched path: slots instead of dispatchers, and the callers on that path.
        self._slots = asyncio.Semaphore(max(1, model.max_concurrency))
        self._callers: set[asyncio.Task[object]] = set()
        self.batches = 0
        self.batched_requests = 0

    async def __aenter__(self) -> ModelRuntime:
        self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def _batching(self) -> bool:
        return self.policy.max_batch > 1

    def start(self) -> None:
        if self._batching and not self._workers:
            n = max(1, self.model.max_concurrency)
            self._workers = [asyncio.create_task(self._dispatch()) for _ in range(n)]

    async def stop(self) -> None:
        for caller in list(self._callers):  # as queued requests and batches are: cancelled
            caller.cancel()
        for w in self._workers:
            w.cancel()
        for w in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await w
        self._workers = []
        while not self._queue.empty():
            pending = self._queue.get_nowait()
            if not pending.future.done():
                pending.future.cancel()

    async def classify(self, request: ClassifyRequest) -> Prediction:
        if not self._batching:
            return await self._classify_alone(request)
        if not self._workers:
            self.start()
        future: asyncio.Future[Prediction] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(request, future))
        return await future

    async def classify_many(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        return list(await asyncio.gather(*(self.classify(r) for r in requests)))

    async def _classify_alone(self, request: ClassifyRequest) -> Prediction:
        caller = asyncio.current_task()
        if caller is not None:  # stop() cancels those waiting for a slot and those in the model
            self._callers.add(caller)
        try:
            async with self._slots:
                predictions = await self.model.classify([request])
        finally:
            self._callers.discard(caller)
        _check_count(self.model, predictions, 1)
        self.batches += 1
        self.batched_requests += 1
        return predictions[0]

    async def _gather_batch(self) -> list[_Pending]:
        batch = [await self._queue.get()]
        try:
            if self.policy.max_batch > 1:
                await self._fill(batch)
        except asyncio.CancelledError:
            # Stopped while gathering: the requests taken off the queue are not lost.
            _cancel(batch)
            raise
        return [p for p in batch if not p.future.cancelled()]

    async def _fill(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.policy.max_wait_ms / 1000
        while len(batch) < self.policy.max_batch:
            # Take whatever is already queued at once; wait a little only for stragglers.
            if not self._queue.empty():
                batch.append(self._queue.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                return

    async def _dispatch(self) -> None:
        while True:
            batch = await self._gather_batch()
            if not batch:
                continue
            try:
                predictions = await self.model.classify([p.request for p in batch])
                _check_count(self.model, predictions, len(batch))
            except asyncio.CancelledError:
                _cancel(batch)
                raise
            except Exception as e:  # the error belongs to the callers of this batch
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            self.batches += 1
            self.batched_requests += len(batch)
            for p, pred in zip(batch, predictions, strict=True):
                if not p.future.done():
                    p.future.set_result(pred)


def _check_count(model: Model, predictions: Sequence[Prediction], asked: int) -> None:
    if len(predictions) != asked:
        raise RuntimeError(
            f"{model.model_id} answered {len(predictions)} predictions for {asked} requests; "
            "this is a bug in its backend"
        )


def _cancel(batch: list[_Pending]) -> None:
    for p in batch:
        if not p.future.done():
            p.future.cancel()
