"""Load test: closed-loop virtual users against one rung, through its serving path.

At each concurrency level, that many virtual users each send a request, wait for the answer,
and send the next, until the level's request budget or time budget is spent. Requests go
through ``ModelRuntime`` (queueing, micro-batching) for local rungs and the async client for
API rungs, i.e. the path the server uses. Answers are never taken from the cache here: the
point is to measure the rung.

The time budget is a hard stop, as in wrk: requests still in flight when it runs out are
cancelled and counted as ``unfinished``, neither answered nor failed, so that one slow request
(an API's 60 s time-out, a long queue in front of a local model) cannot stretch a level past
``max_seconds``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from rung.errors import RungError
from rung.models.base import ClassifyRequest, GenerateRequest, Model
from rung.models.runtime import ModelRuntime
from rung.responses import Progress
from rung.runs.spec import LoadSpec
from rung.tasks.metrics import percentile

__all__ = [
    "LevelResult",
    "drive",
    "load_test",
    "run_generate_level",
    "run_level",
    "time_to_first_token",
]

RequestT = TypeVar("RequestT")


@dataclass(frozen=True)
class LevelResult:
    concurrency: int
    requests: int
    errors: int
    wall_s: float
    throughput_per_s: float
    output_tokens_per_s: float
    latency_ms: dict[str, float]
    first_error: str | None = None
    #: requests cut off in flight when the time budget ran out
    unfinished: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "concurrency": self.concurrency,
            "requests": self.requests,
            "errors": self.errors,
            "wall_s": self.wall_s,
            "throughput_per_s": self.throughput_per_s,
            "output_tokens_per_s": self.output_tokens_per_s,
            "latency_ms": self.latency_ms,
            "first_error": self.first_error,
            "unfinished": self.unfinished,
        }


async def run_level(
    runtime: ModelRuntime,
    requests: Sequence[ClassifyRequest],
    concurrency: int,
    *,
    max_requests: int,
    max_seconds: float,
) -> LevelResult:
    """Drive ``runtime`` with ``concurrency`` virtual users; bounded in count and in time."""

    async def ask(request: ClassifyRequest) -> int:
        return (await runtime.classify(request)).tokens_out

    return await drive(
        ask, requests, concurrency, max_requests=max_requests, max_seconds=max_seconds
    )


async def run_generate_level(
    model: Model,
    requests: Sequence[GenerateRequest],
    concurrency: int,
    *,
    max_requests: int,
    max_seconds: float,
) -> LevelResult:
    """The same closed loop for a rung that writes text (extract, summarize, answer, ...):
    each virtual user asks ``model.generate`` with the task's own requests."""

    async def ask(request: GenerateRequest) -> int:
        return (await model.generate(request)).tokens_out

    return await drive(
        ask, requests, concurrency, max_requests=max_requests, max_seconds=max_seconds
    )


async def drive(
    ask: Callable[[RequestT], Awaitable[int]],
    requests: Sequence[RequestT],
    concurrency: int,
    *,
    max_requests: int,
    max_seconds: float,
) -> LevelResult:
    """``concurrency`` virtual users each calling ``ask`` (which returns the output tokens)
    back to back, until ``max_requests`` are issued or ``max_seconds`` run out."""
    if not requests:
        raise ValueError("a load test needs at least one request")
    if concurrency < 1:
        raise ValueError(f"concurrency must be at least 1, got {concurrency}")
    latencies: list[float] = []
    tokens_out = 0
    errors = 0
    in_flight = 0
    first_error: str | None = None
    issued = 0
    started = time.perf_counter()
    deadline = started + max_seconds

    async def user() -> None:
        nonlocal issued, tokens_out, errors, first_error, in_flight
        while issued < max_requests and time.perf_counter() < deadline:
            request = requests[issued % len(requests)]
            issued += 1
            in_flight += 1
            t0 = time.perf_counter()
            try:
                out = await ask(request)
            except Exception as e:  # counted and reported, the load goes on
                errors += 1
                first_error = first_error or f"{type(e).__name__}: {e}"
                continue
            finally:
                in_flight -= 1
            latencies.append((time.perf_counter() - t0) * 1000)
            tokens_out += out

    users = [asyncio.create_task(user()) for _ in range(concurrency)]
    try:
        await asyncio.wait(users, timeout=max(0.0, deadline - time.perf_counter()))
        # Read before the cancellations below reach the users (and their ``finally``).
        unfinished = in_flight
        wall = time.perf_counter() - started
    finally:
        # Also reached when the caller is cancelled: no virtual user outlives its level.
        for task in users:
            task.cancel()
    outcomes = await asyncio.gather(*users, return_exceptions=True)
    for outcome in outcomes:  # a user that died of a bug, not of a request's error
        if isinstance(outcome, Exception):
            raise outcome
    done = len(latencies)
    return LevelResult(
        concurrency=concurrency,
        requests=done,
        errors=errors,
        wall_s=wall,
        throughput_per_s=done / wall if wall > 0 else 0.0,
        output_tokens_per_s=tokens_out / wall if wall > 0 else 0.0,
        latency_ms={
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "mean": sum(latencies) / done if done else 0.0,
        },
        first_error=first_error,
        unfinished=unfinished,
    )


async def time_to_first_token(
    model: Model,
    requests: Sequence[ClassifyRequest] | Sequence[GenerateRequest],
    concurrency: int,
    *,
    max_requests: int,
    max_seconds: float,
) -> dict[str, float] | None:
    """Time to first token of a generative rung with ``concurrency`` users: the latency of a
    one-token generation on the task's prompts, which is the prompt's processing plus one
    decoding step, queueing included. None when no request got an answer."""
    times: list[float] = []
    issued = 0
    deadline = time.perf_counter() + max_seconds

    async def user() -> None:
        nonlocal issued
        while issued < max_requests and time.perf_counter() < deadline:
            request = requests[issued % len(requests)]
            issued += 1
            t0 = time.perf_counter()
            try:
                await model.generate(GenerateRequest(messages=request.messages, max_tokens=1))
            except RungError:
                continue  # the classify level already counts and reports the rung's errors
            times.append((time.perf_counter() - t0) * 1000)

    await asyncio.gather(*(user() for _ in range(concurrency)))
    if not times:
        return None
    return {"p50": percentile(times, 50), "p95": percentile(times, 95), "n": float(len(times))}


async def load_test(
    model: Model,
    requests: Sequence[ClassifyRequest] | Sequence[GenerateRequest],
    spec: LoadSpec,
    progress: Progress,
    label: str,
    level: Callable[[int], Awaitable[LevelResult]],
) -> list[dict[str, Any]]:
    """Every level of ``spec`` (``level(concurrency)`` runs one), as the record keeps them,
    with the time to first token at each level for a rung that generates."""
    levels = []
    for concurrency in spec.concurrency:
        progress.step(label, f"load test, {concurrency} concurrent")
        entry: dict[str, Any] = (await level(concurrency)).to_json()
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
