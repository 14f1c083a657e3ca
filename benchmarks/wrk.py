"""wrk, the C load generator, POSTing one body: the reference rung's load figures are read
beside. Shared by the load and gateway benchmarks."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WrkResult:
    requests_per_s: float
    requests: int
    p50_ms: float
    non_2xx: int
    socket_errors: int


def run_wrk(
    url: str, raw: bytes, clients: int, seconds: float, workdir: Path, headers: dict[str, str]
) -> WrkResult:
    """POST ``raw`` to ``url`` from ``clients`` connections on one thread for ``seconds``."""
    body_file = workdir / "body.json"
    body_file.write_bytes(raw)
    script = workdir / "post.lua"
    header_lines = "".join(f'wrk.headers["{k}"] = "{v}"\n' for k, v in headers.items())
    script.write_text(
        f"""local f = assert(io.open("{body_file}", "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
{header_lines}""",
        encoding="utf-8",
    )
    duration = max(1, round(seconds))
    out = subprocess.run(
        ["wrk", "-t1", f"-c{clients}", f"-d{duration}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 30,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    count = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}
    p50_ms = float(p50.group(1)) * scale[p50.group(2)] if p50 else float("nan")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", out)
    socket = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return WrkResult(
        requests_per_s=rps,
        requests=count,
        p50_ms=p50_ms,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in socket.groups()) if socket else 0,
    )
