"""Is rung's load generator the bottleneck? rung against plain clients, on one instant upstream.

    python benchmarks/bench_load.py [--levels 16,64] [--seconds 3] [--repeats 3] [--profile]

One InstantUpstreamDouble (upstream_double.py, its own process) answers every chat completion
at once. Against it, at each concurrency level, with the same request body, closed loops of
that many virtual users, each bounded by ``--max-requests`` and ``--seconds``:

- rung:        ``run_level`` driving ``ModelRuntime(OpenAIModel)`` with options.concurrency =
               the level: what ``rung compare``'s load test does for an API rung;
- rung what-if: the same with three changes to OpenAIModel this benchmark proposes (see
               ``WhatIfOpenAIModel``), to measure what they would bring;
- sdk create:  the openai SDK's ``chat.completions.create`` on one long-lived client (the
               floor of OpenAIModel, which calls exactly this);
- sdk post:    the SDK's generic ``client.post(..., cast_to=ChatCompletion)``: the same HTTP
               request and response parsing, without the per-request params transform;
- raw httpx2:  an ``httpx2.AsyncClient`` loop (the SDK's own transport), body bytes as rung sent;
- raw httpx:   an ``httpx.AsyncClient`` loop, same bytes;
- wrk:         wrk with a Lua script POSTing the same bytes (skipped when wrk is not installed;
               Debian: ``apt-get install wrk``): what the upstream itself can serve.

The clients take turns in each repeat, so a burst of load from elsewhere on the machine hits
them alike; the table shows the median and the best of the repeats, the TCP connections each
client opened (a client that reuses its connections opens ``level`` of them) and the requests
the upstream counted (a cross-check of the client's own count). Goal (issue 3): rung sustains at
least 1,000 requests/s on 2 cores. ``--profile`` adds a cProfile of one rung level, its time
grouped by package. A last check runs rung at concurrency 1 and counts the connections it opens:
OpenAIModel closes its client whenever no call is in flight, so one user gets a new client and a
new connection (a TLS handshake, against a real API) per request.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import cProfile
import json
import os
import pstats
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rung.compare.load import LevelResult, run_level
from rung.models import registry
from rung.models.base import ClassifyRequest, Prediction
from rung.models.openai import OpenAIModel, OpenAIOptions
from rung.models.runtime import ModelRuntime
from rung.tasks.classify import ClassifyTask, DataSource, TaskData, build_requests
from rung.tasks.data import read_examples
from rung.tasks.metrics import percentile
from upstream_double import InstantUpstreamDouble
from wrk import run_wrk

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FPB = DATA / "financial_phrasebank" / "Sentences_AllAgree.txt"
LABELS = ("negative", "neutral", "positive")
GOAL_RPS = 1000.0


@dataclass
class Bounds:
    max_requests: int
    max_seconds: float


@dataclass
class Figure:
    rps: float
    requests: int
    p50_ms: float
    connections: int
    served: int
    cpu_us: float  # the client's CPU time per request, in microseconds
    errors: int = 0


def fpb_request() -> ClassifyRequest:
    """One financial phrasebank sentence with the task's own prompt: the body every client
    sends (rung's exact bytes are read back from the upstream and replayed by the others)."""
    example = read_examples(FPB)[0]
    task = ClassifyTask(data=DataSource(path=FPB), labels=list(LABELS))
    return build_requests(task, TaskData(train=[], test=[example], labels=LABELS))[0]


# --- the clients --------------------------------------------------------------------------------


async def closed_loop(
    concurrency: int, one: Callable[[], Awaitable[object]], bounds: Bounds
) -> tuple[int, float, list[float]]:
    """The plain clients' loop, with run_level's semantics: ``concurrency`` users back to back,
    bounded in count, and a hard stop at the time budget. (requests, wall seconds, latencies)"""
    issued = 0
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = started + bounds.max_seconds

    async def user() -> None:
        nonlocal issued
        while issued < bounds.max_requests and time.perf_counter() < deadline:
            issued += 1
            t0 = time.perf_counter()
            await one()
            latencies.append((time.perf_counter() - t0) * 1000)

    users = [asyncio.create_task(user()) for _ in range(concurrency)]
    await asyncio.wait(users, timeout=bounds.max_seconds)
    wall = time.perf_counter() - started
    for task in users:
        task.cancel()
    for outcome in await asyncio.gather(*users, return_exceptions=True):
        if isinstance(outcome, Exception):
            raise outcome
    return len(latencies), wall, latencies


async def rung_level(
    base_url: str, request: ClassifyRequest, level: int, bounds: Bounds, what_if: bool = False
) -> LevelResult:
    options = {"base_url": base_url, "concurrency": level, "max_retries": 0}
    model = (
        WhatIfOpenAIModel("double", OpenAIOptions.model_validate(options))
        if what_if
        else registry.create("openai:double", options)
    )
    model.load()
    try:
        async with contextlib.AsyncExitStack() as stack:
            if what_if:  # one call held open for the whole level: the client is never closed
                await stack.enter_async_context(model._session())  # type: ignore[attr-defined]
            runtime = await stack.enter_async_context(ModelRuntime(model))
            return await run_level(
                runtime,
                [request],
                level,
                max_requests=bounds.max_requests,
                max_seconds=bounds.max_seconds,
            )
    finally:
        model.close()


class WhatIfOpenAIModel(OpenAIModel):
    """OpenAIModel with three changes this benchmark proposes for openai.py, to measure what
    they would bring (a what-if, not rung's code): the client stays open between calls (see
    ``rung_level``), a batch of one request is sent without a TaskGroup, and the request goes
    through the SDK's ``client.post`` with the body as is, skipping ``create``'s params
    transform (the SDK still builds, sends and parses the same request and answer)."""

    def load(self) -> None:
        super().load()
        factory = self._client_factory
        assert factory is not None

        def patched() -> Any:
            from openai.types.chat import ChatCompletion

            client = factory()

            def create(**body: Any) -> Awaitable[Any]:
                return client.post("/chat/completions", body=body, cast_to=ChatCompletion)

            client.chat.completions.create = create  # type: ignore[method-assign,assignment]
            return client

        self._client_factory = patched

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        if len(requests) != 1:
            return await super().classify(requests)
        async with self._session() as state:
            return [await self._classify_one(state, requests[0])]


async def sdk_loop(
    base_url: str, body: dict[str, Any], level: int, bounds: Bounds, how: str
) -> Any:
    import openai
    from openai.types.chat import ChatCompletion

    async with openai.AsyncOpenAI(
        base_url=base_url, api_key="not-needed", max_retries=0, timeout=60
    ) as client:
        if how == "create":

            def one() -> Awaitable[object]:
                return client.chat.completions.create(**body)
        else:

            def one() -> Awaitable[object]:
                return client.post("/chat/completions", body=body, cast_to=ChatCompletion)

        return await closed_loop(level, one, bounds)


async def raw_loop(base_url: str, raw: bytes, level: int, bounds: Bounds, module: str) -> Any:
    http: Any = __import__(module)
    limits = http.Limits(max_connections=level, max_keepalive_connections=level)
    url = f"{base_url}/chat/completions"
    headers = {"content-type": "application/json", "authorization": "Bearer not-needed"}
    async with http.AsyncClient(limits=limits, timeout=60) as client:

        async def one() -> object:
            response = await client.post(url, content=raw, headers=headers)
            response.raise_for_status()
            return response.json()  # the SDK parses every answer: so does this loop

        return await closed_loop(level, one, bounds)


def wrk_level(base_url: str, raw: bytes, level: int, seconds: float, workdir: Path) -> Any:
    headers = {"Content-Type": "application/json", "Authorization": "Bearer not-needed"}
    r = run_wrk(f"{base_url}/chat/completions", raw, level, seconds, workdir, headers)
    return r.requests_per_s, r.requests, r.p50_ms, r.non_2xx


# --- the run ------------------------------------------------------------------------------------

CLIENTS = {
    "rung": "rung run_level (ModelRuntime + OpenAIModel)",
    "rung what-if": "rung, with the 3 proposed openai.py changes",
    "sdk create": "openai SDK chat.completions.create",
    "sdk post": "openai SDK client.post (no transform)",
    "raw httpx2": "raw httpx2 loop (the SDK's transport)",
    "raw httpx": "raw httpx loop",
    "wrk": "wrk (C, 1 thread)",
}


def measure(
    name: str,
    upstream: InstantUpstreamDouble,
    request: ClassifyRequest,
    raw: bytes,
    level: int,
    bounds: Bounds,
    workdir: Path,
) -> Figure:
    before = upstream.stats()
    errors = 0
    cpu_before = _cpu_s(name)
    if name.startswith("rung"):
        what_if = name == "rung what-if"
        result = asyncio.run(rung_level(upstream.base_url, request, level, bounds, what_if))
        rps, count, p50, errors = (
            result.throughput_per_s,
            result.requests,
            result.latency_ms["p50"],
            result.errors,
        )
        if result.first_error:
            print(f"  {name} at {level}: {result.errors} errors, first: {result.first_error}")
    elif name == "wrk":
        rps, count, p50, errors = wrk_level(
            upstream.base_url, raw, level, bounds.max_seconds, workdir
        )
    else:
        body = json.loads(raw)
        if name.startswith("sdk"):
            how = name.split()[1]
            coro = sdk_loop(upstream.base_url, body, level, bounds, how)
        else:
            coro = raw_loop(upstream.base_url, raw, level, bounds, name.split()[1])
        count, wall, latencies = asyncio.run(coro)
        rps, p50 = count / wall, percentile(latencies, 50)
    cpu = _cpu_s(name) - cpu_before
    after = upstream.stats()
    return Figure(
        rps=rps,
        requests=count,
        p50_ms=p50,
        connections=after.connections - before.connections,
        served=after.completions - before.completions,
        cpu_us=cpu / max(count, 1) * 1e6,
        errors=errors,
    )


def _cpu_s(name: str) -> float:
    """CPU seconds (user + system) of the client: this process, or the wrk child once reaped.
    Other work on a shared machine slows a client's wall clock but hardly its CPU time, so
    CPU per request is the steadier figure; 1e6 / cpu_us is the rate one free core allows."""
    who = resource.RUSAGE_CHILDREN if name == "wrk" else resource.RUSAGE_SELF
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def profile_rung(upstream: InstantUpstreamDouble, request: ClassifyRequest, bounds: Bounds) -> None:
    """Where a rung level spends its CPU: cProfile's own time, grouped by package."""
    profiler = cProfile.Profile()
    profiler.enable()
    result = asyncio.run(rung_level(upstream.base_url, request, 16, bounds))
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_package: collections.Counter[str] = collections.Counter()
    for (filename, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        elif "/rung/" in filename:
            key = "rung"
        elif filename.startswith(("~", "<")):
            key = "C builtins (" + function.split("'")[1] + ")" if "'" in function else "builtins"
        else:
            key = "stdlib " + Path(filename).name
        by_package[key] += own
    total = sum(by_package.values())
    print(
        f"\ncProfile of rung at concurrency 16: {result.requests} requests, "
        f"{result.throughput_per_s:.0f}/s under the profiler; CPU time by package:"
    )
    for key, own in by_package.most_common(12):
        print(f"  {key:44} {own:6.2f} s {100 * own / total:5.1f}%")
    print("  stages of one request (cumulative, share of the profiled time):")
    stages = {
        "openai _transform (params walk)": r"_utils/_transform.py.*\(async_maybe_transform\)",
        "openai _build_request": r"_base_client.py.*\(_build_request\)",
        "httpx2 send (HTTP/1.1 over h11)": r"httpx2/_client.py.*\(send\)",
        "openai _process_response (parse)": r"_base_client.py.*\(_process_response\)",
    }
    for label, pattern in stages.items():
        cum = sum(
            entry[3]
            for (filename, line, function), entry in stats.stats.items()  # type: ignore[attr-defined]
            if re.search(pattern, f"{filename}:{line}({function})")
        )
        print(f"    {label:42} {cum:6.2f} s {100 * cum / total:5.1f}%")


def connection_reuse(upstream: InstantUpstreamDouble, request: ClassifyRequest) -> None:
    """rung at one virtual user: a client that keeps its connection opens one."""
    print()
    for what_if in (False, True):
        before = upstream.stats()
        result = asyncio.run(
            rung_level(upstream.base_url, request, 1, Bounds(300, 2.0), what_if=what_if)
        )
        opened = upstream.stats().connections - before.connections
        churn = opened > max(2, result.requests // 10)
        print(
            f"{'rung what-if' if what_if else 'rung':12} at concurrency 1: {result.requests} "
            f"requests, {result.throughput_per_s:.0f}/s, p50 {result.latency_ms['p50']:.2f} ms, "
            f"{opened} TCP connections opened"
            + ("  <- a new client and connection per request" if churn else "")
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--levels", default="16,64", help="concurrency levels, comma-separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per run")
    parser.add_argument("--max-requests", type=int, default=50_000, help="count budget per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one rung level")
    args = parser.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    bounds = Bounds(args.max_requests, args.seconds)
    names = [n for n in CLIENTS if n != "wrk" or shutil.which("wrk")]
    if "wrk" not in names:
        print("wrk is not installed (Debian: apt-get install wrk): its row is skipped")
    request = fpb_request()
    print(f"cores: {os.cpu_count()}; {args.repeats} repeats of {args.seconds:g} s per client")

    figures: dict[tuple[int, str], list[Figure]] = collections.defaultdict(list)
    with InstantUpstreamDouble() as upstream, tempfile.TemporaryDirectory() as tmp:
        # Warm-up (imports, the SDK's caches), and rung's exact body for the other clients.
        asyncio.run(rung_level(upstream.base_url, request, 4, Bounds(200, 2.0)))
        raw = upstream.stats().last_body.encode("utf-8")
        print(f"request body: {len(raw)} bytes; upstream pid {upstream.pid}")
        for level in levels:
            for repeat in range(args.repeats):
                order = names if repeat % 2 == 0 else names[::-1]
                for name in order:
                    figures[level, name].append(
                        measure(name, upstream, request, raw, level, bounds, Path(tmp))
                    )
        if args.profile:
            profile_rung(upstream, request, bounds)
        connection_reuse(upstream, request)

    print(
        f"\n{'level':>5}  {'client':44} {'req/s':>8} {'best':>8} {'p50 ms':>7} "
        f"{'cpu us/req':>10} {'1 core/s':>9} {'conns':>6} {'served':>6}"
    )
    best_rung = 0.0
    for level in levels:
        medians = {}
        for name in names:
            runs = figures[level, name]
            median = statistics.median(f.rps for f in runs)
            medians[name] = median
            cpu_us = statistics.median(f.cpu_us for f in runs)
            conns = max(f.connections for f in runs)
            exact = all(f.served >= f.requests for f in runs)
            print(
                f"{level:5}  {CLIENTS[name]:44} {median:8.0f} {max(f.rps for f in runs):8.0f} "
                f"{statistics.median(f.p50_ms for f in runs):7.2f} {cpu_us:10.0f} "
                f"{1e6 / cpu_us:9.0f} {conns:6} {'ok' if exact else 'LOST':>6}"
                + (f"  errors {sum(f.errors for f in runs)}" if any(f.errors for f in runs) else "")
            )
        best_rung = max(best_rung, medians["rung"])
        ratios = [f"rung/{n} = {medians['rung'] / medians[n]:.2f}" for n in names if n != "rung"]
        print(f"       req/s ratios at {level}: " + ", ".join(ratios))
    ok = best_rung >= GOAL_RPS
    print(
        f"\ngoal: rung sustains >= {GOAL_RPS:.0f} requests/s: best median {best_rung:.0f}/s "
        f"-> {'ok' if ok else 'BELOW GOAL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
