"""What does rung serve add as a gateway? The upstream direct, rung serve and LiteLLM's proxy.

    python benchmarks/bench_gateway.py [--seconds 5] [--repeats 3] [--no-litellm] [--profile]
        [--rate-limit local] [--rate-limit shared] [--postgres | --ledger-url URL]

One InstantUpstreamDouble (upstream_double.py, its own process) answers every chat completion at
once. In front of it, each in its own process on 127.0.0.1:

- direct:  no gateway: the load generator calls the upstream itself (the floor);
- rung:    ``rung serve`` with one ``openai:`` rung whose base_url is the upstream (auth off,
           uvicorn's access log off, the usage ledger in a temporary SQLite file);
- litellm: LiteLLM's proxy (``litellm --config``) with one model_list entry for the upstream,
           installed from PyPI into its own venv (benchmarks/.venv-litellm, kept between runs;
           ``--litellm-venv`` to put it elsewhere). When it cannot be installed or started, the
           other two are still measured and the reason is printed.

The same chat completion body (a financial phrasebank sentence, ``max_tokens`` 4) goes to each
with wrk (a C load generator with a Lua POST script; Debian: ``apt-get install wrk``), or, when
wrk is missing, with a closed loop of raw httpx clients bounded in count and time. Two levels:
1 client (p50 latency: the overhead of one request) and 64 clients (p50 and requests/s). The
targets take turns in each repeat, so a burst of load from elsewhere on the machine hits them
alike; the table shows the median of the repeats. Each run cross-checks the upstream's own count
of completions: a gateway that answered without calling the upstream would show as LOST.

``--rate-limit local`` and ``--rate-limit shared`` add one rung serve each that asks for an API
key, sent by the load generator, whose rpm (10 million) is checked on every request and never
reached: ``local`` counts it in the server's memory (``limits.shared_rate_limits: false``),
``shared`` in the ledger (``true``), as replicas sharing a ledger do. Their ledger is a
temporary SQLite file, or ``--ledger-url``, or with ``--postgres`` a throwaway PostgreSQL
started here (Debian's ``postgresql`` package: initdb and pg_ctl), which is what replicas
share in production.

Goal (issue 6): rung adds under 2 ms at p50 over calling the upstream directly, and serves at
least twice LiteLLM's requests/s at 64 concurrent clients. ``--profile`` runs rung serve once
more under cProfile (at ``--profile-clients``, 64 by default) and prints where its process spends CPU per request.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import pstats
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_double import InstantUpstreamDouble
from wrk import run_wrk

HERE = Path(__file__).resolve().parent
FPB = HERE.parents[1] / "shared" / "data" / "financial_phrasebank" / "Sentences_AllAgree.txt"
MODEL = "bench"  # rung's public name and LiteLLM's model_name; the upstream ignores it
GOAL_ADDED_P50_MS = 2.0
GOAL_RPS_RATIO = 2.0
LEVELS = (1, 64)
TARGETS = ("direct", "rung", "rung-local", "rung-shared", "litellm")
LABELS = {
    "direct": "upstream, called directly",
    "rung": "rung serve (proxy)",
    "rung-local": "rung + key, rpm in memory",
    "rung-shared": "rung + key, rpm in ledger",
    "litellm": "LiteLLM proxy",
}
#: the rpm of the key the rate-limited targets are called with: checked, never reached
BENCH_RPM = 10_000_000
JSON = {"content-type": "application/json"}


@dataclass
class Figure:
    rps: float
    p50_ms: float
    requests: int
    served: int  # completions the upstream counted during the run
    errors: int


def request_body() -> bytes:
    sentence = "Operating profit rose to EUR 13.1 mn from EUR 8.7 mn in the corresponding period."
    if FPB.exists():
        sentence = FPB.read_text(encoding="latin-1").splitlines()[0].rsplit("@", 1)[0]
    body = {
        "model": MODEL,
        "messages": [
            {
                "role": "system",
                "content": "Label the sentiment of the sentence: negative, neutral or positive.",
            },
            {"role": "user", "content": sentence},
        ],
        "max_tokens": 4,
        "temperature": 0,
    }
    return json.dumps(body).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the servers --------------------------------------------------------------------------------


class Server:
    """A server process on 127.0.0.1, stopped (then killed) on exit; its output goes to a file
    so that a full pipe never blocks it and a failed start can be explained."""

    def __init__(
        self, name: str, argv: list[str], env: dict[str, str], health: str, log: Path
    ) -> None:
        self.name, self.argv, self.env, self.health, self.log = name, argv, env, health, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float) -> None:
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.health, timeout=2).status_code == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} not ready within {timeout_s:.0f} s: {self.tail()}")

    def tail(self, lines: int = 8) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass(frozen=True)
class Keyed:
    """A rung serve that asks for a key: its ledger, and where its rate limit is counted."""

    name: str  # the target: rung-local or rung-shared
    ledger_url: str
    shared: bool


def rung_server(
    upstream: InstantUpstreamDouble,
    workdir: Path,
    profile: Path | None,
    keyed: Keyed | None = None,
) -> Server:
    name = keyed.name if keyed else "rung"
    config: dict[str, Any] = {
        "models": [
            {
                "id": "openai:double",
                "name": MODEL,
                "options": {
                    "base_url": upstream.base_url,
                    "api_key": "not-needed",
                    "logprobs": False,
                    "concurrency": 64,
                    "max_retries": 0,
                },
            }
        ],
        "auth": {"required": False},
        "limits": {"default_rpm": None},
        "ledger": {"url": f"sqlite:///{workdir / 'rung-ledger.db'}"},
    }
    if keyed is not None:
        config["auth"] = {"required": True}
        config["limits"] = {"shared_rate_limits": keyed.shared}
        config["ledger"] = {"url": keyed.ledger_url}
    path = workdir / f"{name}-serve.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    port = free_port()
    python = [sys.executable] + (["-m", "cProfile", "-o", str(profile)] if profile else [])
    # log-level warning: uvicorn logs each request at info, so its access log goes quiet
    argv = [*python, "-m", "rung.cli.main", "serve", str(path), "--port", str(port)]
    argv += ["--log-level", "warning"]
    env = dict(os.environ, RUNG_CACHE_DIR=str(workdir / "cache"))
    server = Server(
        f"{name} serve", argv, env, f"http://127.0.0.1:{port}/healthz", workdir / f"{name}.log"
    )
    server.port = port  # type: ignore[attr-defined]
    return server


def litellm_venv(venv: Path) -> Path:
    """LiteLLM's proxy in its own venv (its pins must not touch rung's): created once."""
    exe = venv / "bin" / "litellm"
    if exe.exists():
        return exe
    print(f"installing litellm[proxy] into {venv} (once; a few minutes) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run(
        [*pip, "litellm[proxy]"], capture_output=True, text=True, timeout=1200, check=False
    )
    if done.returncode != 0 or not exe.exists():
        raise RuntimeError("pip install 'litellm[proxy]' failed: " + done.stderr.strip()[-400:])
    return exe


def litellm_server(exe: Path, upstream: InstantUpstreamDouble, workdir: Path) -> Server:
    config = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{MODEL}",
                    "api_base": upstream.base_url,
                    "api_key": "x",
                },
            }
        ],
        # As quiet as it goes: no telemetry, no message logging, no verbose output.
        "litellm_settings": {
            "telemetry": False,
            "set_verbose": False,
            "turn_off_message_logging": True,
        },
        # No master key, so no auth, as rung runs here (auth: required: false); LiteLLM
        # refuses to start that way unless told it is meant.
        "general_settings": {"dangerously_permit_weak_or_unset_master_key": True},
    }
    path = workdir / "litellm.yaml"
    path.write_text(json.dumps(config), encoding="utf-8")
    port = free_port()
    argv = [str(exe), "--config", str(path), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--telemetry", "False"]
    env = dict(
        os.environ,
        LITELLM_LOCAL_MODEL_COST_MAP="True",  # no fetch of the price list from GitHub
        LITELLM_LOG="ERROR",
        LITELLM_TELEMETRY="False",
        DISABLE_SCHEMA_UPDATE="True",
        PATH=f"{exe.parent}:{os.environ.get('PATH', '')}",
    )
    env.pop("VIRTUAL_ENV", None)
    health = f"http://127.0.0.1:{port}/health/liveliness"
    server = Server("litellm proxy", argv, env, health, workdir / "litellm.log")
    server.port = port  # type: ignore[attr-defined]
    return server


@contextlib.contextmanager
def running(server: Server, timeout_s: float) -> Iterator[Server]:
    try:
        server.start(timeout_s)
        yield server
    finally:
        server.stop()


# --- the load -----------------------------------------------------------------------------------


def create_bench_key(ledger_url: str) -> str:
    """A key with ``BENCH_RPM`` in the ledger, as `rung keys create --rpm` makes it."""
    from rung.serve.auth import create_key
    from rung.serve.ledger import Ledger

    ledger = Ledger(ledger_url)
    try:
        return create_key(ledger, "bench", rpm=BENCH_RPM)[1]
    finally:
        ledger.close()


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A PostgreSQL server in a temporary folder, for as long as the benchmark runs (as
    tests/serve/test_postgres.py starts one): its URL."""
    found = shutil.which("initdb") or next(
        iter(sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)), None
    )
    if found is None:
        raise RuntimeError("initdb not found: apt-get install -y postgresql")
    bindir = Path(found).resolve().parent
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    root = Path(tempfile.mkdtemp(prefix="rung-bench-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run([*as_postgres, *initdb, "--no-sync"], check=True, capture_output=True)
    # fsync off (-F), as in the tests: this measures rung's statements, not the disk
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -F"
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*pg_ctl, "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*pg_ctl, "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


def probe(url: str, raw: bytes, headers: dict[str, str]) -> None:
    """One request through the target: a 200 with the upstream's answer, or an error."""
    response = httpx.post(url, content=raw, headers=headers, timeout=30)
    if response.status_code != 200 or "positive" not in response.text:
        raise RuntimeError(f"{url} answered {response.status_code}: {response.text[:300]}")


def wrk_run(
    url: str, raw: bytes, clients: int, seconds: float, workdir: Path, headers: dict[str, str]
) -> Figure:
    r = run_wrk(url, raw, clients, seconds, workdir, headers)
    return Figure(r.requests_per_s, r.p50_ms, r.requests, 0, r.non_2xx + r.socket_errors)


async def httpx_run(
    url: str, raw: bytes, clients: int, seconds: float, headers: dict[str, str]
) -> Figure:
    """The fallback without wrk: ``clients`` users back to back, bounded in count and time."""
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    latencies: list[float] = []
    errors = 0
    issued = 0
    max_requests = 200_000
    started = time.perf_counter()
    deadline = started + seconds
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def user() -> None:
            nonlocal issued, errors
            while issued < max_requests and time.perf_counter() < deadline:
                issued += 1
                t0 = time.perf_counter()
                response = await client.post(url, content=raw, headers=headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += response.status_code != 200

        users = [asyncio.create_task(user()) for _ in range(clients)]
        await asyncio.wait(users, timeout=seconds + 30)
        for task in users:
            task.cancel()
        await asyncio.gather(*users, return_exceptions=True)
    wall = time.perf_counter() - started
    p50 = statistics.median(latencies) if latencies else float("nan")
    return Figure(len(latencies) / wall, p50, len(latencies), 0, errors)


def measure(
    upstream: InstantUpstreamDouble,
    url: str,
    raw: bytes,
    clients: int,
    seconds: float,
    workdir: Path,
    headers: dict[str, str] = JSON,
) -> Figure:
    before = upstream.stats().completions
    if shutil.which("wrk"):
        figure = wrk_run(url, raw, clients, seconds, workdir, headers)
    else:
        figure = asyncio.run(httpx_run(url, raw, clients, seconds, headers))
    figure.served = upstream.stats().completions - before
    return figure


# --- the profile --------------------------------------------------------------------------------


def profile_rung(
    upstream: InstantUpstreamDouble, raw: bytes, seconds: float, workdir: Path, clients: int
) -> None:
    """rung serve under cProfile at ``clients`` clients: its CPU per request, by package and by stage."""
    out = workdir / "rung.prof"
    server = rung_server(upstream, workdir, profile=out)
    with contextlib.ExitStack() as stack:
        stack.callback(server.stop, signal.SIGINT)  # uvicorn exits cleanly; cProfile then writes
        server.start(120)
        url = f"http://127.0.0.1:{server.port}/v1/chat/completions"  # type: ignore[attr-defined]
        probe(url, raw, JSON)
        figure = measure(upstream, url, raw, clients, seconds, workdir)
    if not out.exists():
        print(f"\nno profile written: {server.tail()}")
        return
    stats = pstats.Stats(str(out))
    entries = stats.stats  # type: ignore[attr-defined]
    per_request = 1e6 / max(figure.requests, 1)
    by_package: collections.Counter[str] = collections.Counter()
    for (filename, _, function), (_, _, own, _, _) in entries.items():
        if "site-packages/" in filename:
            key = filename.split("site-packages/")[1].split("/")[0].removesuffix(".py")
        elif "/rung/" in filename:
            key = "rung." + filename.split("/rung/")[1].removesuffix(".py").replace("/", ".")
        elif filename.startswith(("~", "<")):
            key = "C builtins (" + function.split("'")[1] + ")" if "'" in function else "builtins"
        else:
            key = "stdlib " + Path(filename).name
        by_package[key] += own
    total = sum(by_package.values())
    print(
        f"\ncProfile of rung serve at {clients} clients: {figure.requests} requests, "
        f"{figure.rps:.0f}/s under the profiler; the server process's CPU "
        f"({total:.1f} s over the whole run, startup included), own time by package:"
    )
    for key, own in by_package.most_common(16):
        print(f"  {key:44} {own:6.2f} s {100 * own / total:5.1f}%  {own * per_request:6.0f} us/req")
    print("  top functions by own time:")
    top = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:14]
    for (filename, line, function), (_, calls, own, _, _) in top:
        where = "/".join(Path(filename).parts[-2:]) if "/" in filename else filename
        print(
            f"    {function[:34]:34} {where[:40]:40}:{line:<5} {own * per_request:6.0f} us/req "
            f"{calls / max(figure.requests, 1):7.1f} calls/req"
        )
    stages = {
        "Gateway middleware (whole request)": r"rung/serve/app.py:\d+\(__call__\)",
        "uvicorn httptools/h11 protocol": r"uvicorn/protocols/http/.*\(data_received\)",
        "rest.chat_completions (handler)": r"rung/serve/rest.py:\d+\(endpoint\)",
        "wire.read_json (body -> ChatBody)": r"rung/serve/wire.py:\d+\(read_json\)",
        "state.generate": r"rung/serve/state.py:\d+\(generate\)",
        "OpenAIModel.generate": r"rung/models/openai.py:\d+\(generate\)",
        "OpenAIModel._post (plain HTTP, no SDK)": r"rung/models/openai.py:\d+\(_post\)",
        "httpx2 send (to the upstream)": r"httpx2/_client.py:\d+\(send\)",
        "httpcore2 pool (per request)": r"httpcore2/_async/connection_pool.py:\d+\(handle_async_request\)",
        "JSONResponse render": r"starlette/responses.py:\d+\(render\)",
        "metrics.observe": r"rung/serve/metrics.py:\d+\(observe\)",
        "ledger/gate record": r"rung/serve/(auth|ledger).py:\d+\(record\)",
        "ledger writes (flush)": r"rung/serve/ledger.py:\d+\((flush|_flush|write|insert)\w*\)",
    }
    print("  stages (cumulative CPU; coroutines count only their own steps, not awaits):")
    for label, pattern in stages.items():
        cum = sum(
            entry[3]
            for (filename, line, function), entry in entries.items()
            if re.search(pattern, f"{filename}:{line}({function})")
        )
        print(
            f"    {label:42} {cum:6.2f} s {100 * cum / total:5.1f}%  {cum * per_request:6.0f} us/req"
        )


# --- the run ------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=5.0, help="duration of each run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-litellm", action="store_true", help="skip LiteLLM")
    parser.add_argument(
        "--litellm-venv", type=Path, default=HERE / ".venv-litellm", help="LiteLLM's own venv"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile rung serve at the end")
    parser.add_argument("--profile-clients", type=int, default=64, help="clients when profiled")
    parser.add_argument(
        "--rate-limit",
        action="append",
        choices=["local", "shared"],
        default=[],
        help="also measure rung serve with an API key whose rpm is counted in memory (local) "
        "or in the ledger (shared); repeat for both",
    )
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--ledger-url", help="the keyed servers' ledger (default: a temporary SQLite file)"
    )
    where.add_argument(
        "--postgres", action="store_true", help="their ledger in a throwaway PostgreSQL"
    )
    args = parser.parse_args()
    raw = request_body()
    tool = "wrk (1 thread)" if shutil.which("wrk") else "httpx closed loop (wrk not installed)"
    print(
        f"cores: {os.cpu_count()}; load generator: {tool}; {args.repeats} repeats of "
        f"{args.seconds:g} s per target and level; body {len(raw)} bytes"
    )

    figures: dict[tuple[str, int], list[Figure]] = collections.defaultdict(list)
    missing: dict[str, str] = {}
    headers: dict[str, dict[str, str]] = collections.defaultdict(lambda: JSON)
    with (
        InstantUpstreamDouble() as upstream,
        tempfile.TemporaryDirectory() as tmp,
        contextlib.ExitStack() as servers,
    ):
        workdir = Path(tmp)
        urls = {"direct": f"{upstream.base_url}/chat/completions"}
        rung = servers.enter_context(running(rung_server(upstream, workdir, None), 120))
        urls["rung"] = f"http://127.0.0.1:{rung.port}/v1/chat/completions"  # type: ignore[attr-defined]
        if args.rate_limit:
            ledger_url = args.ledger_url or f"sqlite:///{workdir / 'keyed-ledger.db'}"
            if args.postgres:
                ledger_url = servers.enter_context(throwaway_postgres())
            print(f"keyed servers' ledger: {ledger_url.split('@')[-1]}")
            key = create_bench_key(ledger_url)
            for mode in sorted(set(args.rate_limit)):
                keyed = Keyed(f"rung-{mode}", ledger_url, shared=mode == "shared")
                server = servers.enter_context(
                    running(rung_server(upstream, workdir, None, keyed), 120)
                )
                urls[keyed.name] = f"http://127.0.0.1:{server.port}/v1/chat/completions"  # type: ignore[attr-defined]
                headers[keyed.name] = {**JSON, "Authorization": f"Bearer {key}"}
        if args.no_litellm:
            missing["litellm"] = "skipped (--no-litellm)"
        else:
            try:
                exe = litellm_venv(args.litellm_venv)
                litellm = servers.enter_context(
                    running(litellm_server(exe, upstream, workdir), 180)
                )
                urls["litellm"] = f"http://127.0.0.1:{litellm.port}/v1/chat/completions"  # type: ignore[attr-defined]
            except (RuntimeError, OSError, subprocess.SubprocessError) as e:
                missing["litellm"] = str(e)
                print(f"LiteLLM is not measured: {e}")
        for name, url in list(urls.items()):
            try:
                probe(url, raw, headers[name])
                # Warm-up: connection pools, lazy imports, caches.
                measure(upstream, url, raw, 8, 1.0, workdir, headers[name])
            except (RuntimeError, httpx.HTTPError, subprocess.SubprocessError) as e:
                missing[name] = f"its probe failed: {e}"
                print(f"{name} is not measured: {e}")
                del urls[name]
        names = [n for n in TARGETS if n in urls]
        for repeat in range(args.repeats):
            for clients in LEVELS:
                order = names if repeat % 2 == 0 else names[::-1]
                for name in order:
                    figures[name, clients].append(
                        measure(
                            upstream, urls[name], raw, clients, args.seconds, workdir, headers[name]
                        )
                    )
        servers.close()
        if args.profile and "rung" in names:
            profile_rung(upstream, raw, args.seconds, workdir, args.profile_clients)

    def median(name: str, clients: int, field: str) -> float:
        return statistics.median(getattr(f, field) for f in figures[name, clients])

    print(
        f"\n{'target':28} {'p50 ms @1':>10} {'p50 ms @64':>11} {'req/s @64':>10} "
        f"{'req/s @1':>9} {'upstream':>9}"
    )
    for name in TARGETS:
        if name.startswith("rung-") and name.removeprefix("rung-") not in args.rate_limit:
            continue  # not asked for
        if (name, 1) not in figures or (name, 64) not in figures:
            print(f"{LABELS[name]:28} not measured: {missing.get(name, '?')}")
            continue
        runs = figures[name, 1] + figures[name, 64]
        exact = all(f.served >= f.requests for f in runs)
        errors = sum(f.errors for f in runs)
        print(
            f"{LABELS[name]:28} {median(name, 1, 'p50_ms'):10.2f} {median(name, 64, 'p50_ms'):11.2f} "
            f"{median(name, 64, 'rps'):10.0f} {median(name, 1, 'rps'):9.0f} "
            f"{'ok' if exact else 'LOST':>9}" + (f"  errors {errors}" if errors else "")
        )

    ok = True
    print()
    if ("rung", 1) in figures and ("direct", 1) in figures:
        added_1 = median("rung", 1, "p50_ms") - median("direct", 1, "p50_ms")
        added_64 = median("rung", 64, "p50_ms") - median("direct", 64, "p50_ms")
        met = added_1 < GOAL_ADDED_P50_MS
        ok &= met
        print(
            f"goal: rung adds < {GOAL_ADDED_P50_MS:g} ms at p50 over direct: +{added_1:.2f} ms at "
            f"1 client -> {'ok' if met else 'MISSED'}  (at 64 clients: +{added_64:.2f} ms)"
        )
    if ("rung", 64) in figures and ("litellm", 64) in figures:
        ratio = median("rung", 64, "rps") / median("litellm", 64, "rps")
        met = ratio >= GOAL_RPS_RATIO
        ok &= met
        lite_1 = median("litellm", 1, "p50_ms") - median("direct", 1, "p50_ms")
        print(
            f"goal: rung serves >= {GOAL_RPS_RATIO:g}x LiteLLM's req/s at 64 clients: "
            f"{ratio:.2f}x -> {'ok' if met else 'MISSED'}  (LiteLLM adds +{lite_1:.2f} ms at "
            "p50, 1 client)"
        )
    else:
        ok = False
        print(f"goal vs LiteLLM not checked: {missing.get('litellm', 'LiteLLM not measured')}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
