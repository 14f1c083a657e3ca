"""Peak memory of one rung, measured in a fresh process so no rung's memory counts toward
another's.

The parent starts ``python -m rung.compare.memory`` with a JSON job on stdin (model id,
options, a few requests, the training split for rungs that train). The child loads the model,
trains it when needed, answers the requests, and prints what the kernel recorded: the peak
resident set (``VmHWM`` in /proc/self/status, falling back to ``getrusage``), the resident set
before the model was loaded, and the peak GPU memory torch allocated when CUDA is present.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rung.compare.gpu import GpuSampler
from rung.errors import RungError
from rung.models import registry
from rung.models.base import ChatMessage, ClassifyRequest

__all__ = ["MemoryReading", "measure_memory", "peak_rss_mb", "rss_mb"]


@dataclass(frozen=True)
class MemoryReading:
    peak_rss_mb: float
    baseline_rss_mb: float
    peak_gpu_mb: float | None
    pid: int

    def to_json(self) -> dict[str, Any]:
        return {
            "peak_rss": self.peak_rss_mb,
            "baseline_rss": self.baseline_rss_mb,
            "model_rss": self.peak_rss_mb - self.baseline_rss_mb,
            "peak_gpu": self.peak_gpu_mb,
        }


def _status_kb(field: str) -> float | None:
    try:
        with open(f"/proc/{os.getpid()}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:  # not Linux: ru_maxrss is KiB on Linux, bytes on macOS
        raw = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        kb = raw / 1024 if sys.platform == "darwin" else raw
    return kb / 1024


def rss_mb() -> float:
    kb = _status_kb("VmRSS")
    return (kb or 0.0) / 1024


def _gpu_peak_mb(driver_mb: float | None) -> float | None:
    """The driver's reading (every CUDA allocation of the process) when there is one, else
    torch's own counter, else None: no GPU was used, or none is here."""
    torch = sys.modules.get("torch")
    torch_mb = None
    if torch is not None and torch.cuda.is_available():
        torch_mb = float(torch.cuda.max_memory_allocated()) / 2**20
    readings = [m for m in (driver_mb, torch_mb) if m is not None]
    return max(readings) if readings else None


def _child(job: dict[str, Any]) -> dict[str, Any]:
    model = registry.create(job["model"], job.get("options") or {})
    model.check()
    baseline = rss_mb()
    requests = [
        ClassifyRequest(
            text=r["text"],
            labels=tuple(r["labels"]),
            messages=tuple(ChatMessage(m["role"], m["content"]) for m in r["messages"]),
        )
        for r in job["requests"]
    ]
    with GpuSampler() as gpu:
        model.load()
        if model.needs_training:
            train = job["train"]
            model.fit(train["texts"], train["labels"], train["label_set"])
        for r in requests:
            asyncio.run(model.classify([r]))
    reading = MemoryReading(peak_rss_mb(), baseline, _gpu_peak_mb(gpu.peak_mb), os.getpid())
    model.close()
    return {"ok": True, "memory": reading.to_json(), "pid": reading.pid}


def request_json(r: ClassifyRequest) -> dict[str, Any]:
    return {
        "text": r.text,
        "labels": list(r.labels),
        "messages": [{"role": m.role, "content": m.content} for m in r.messages],
    }


def measure_memory(
    model_id: str,
    options: dict[str, Any],
    requests: list[ClassifyRequest],
    train: dict[str, Any] | None = None,
    timeout_s: float = 900,
    *,
    on_start: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the memory probe for one rung in a fresh interpreter; returns its reading.

    ``on_start`` is called with the probe's process id once it runs, so that a caller can
    watch the same process from outside (the memory benchmark polls it with psutil)."""
    if train is None and registry.create(model_id, options).needs_training:
        raise RungError(
            f"the memory probe for {model_id} cannot run: the rung trains on the task's data "
            "before it answers; pass the training split (train=)"
        )
    job = {
        "model": model_id,
        "options": options,
        "requests": [request_json(r) for r in requests],
        "train": train,
    }
    with subprocess.Popen(
        [sys.executable, "-m", "rung.compare.memory"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        if on_start is not None:
            on_start(proc.pid)
        try:
            stdout, stderr = proc.communicate(json.dumps(job), timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise RungError(
                f"the memory probe for {model_id} took longer than {timeout_s:g} s; give it "
                "fewer requests, or turn measure.memory off for this rung"
            ) from None
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (stderr or stdout).strip().splitlines()[-1:] or ["no output"]
        raise RungError(f"the memory probe for {model_id} failed: {tail[0]}")
    result: dict[str, Any] = json.loads(lines[-1])
    if not result.get("ok"):
        raise RungError(f"the memory probe for {model_id} failed: {result.get('error')}")
    return dict(result["memory"])


def main() -> int:
    job = json.loads(sys.stdin.read())
    try:
        result = _child(job)
    except RungError as e:
        result = {"ok": False, "error": str(e)}
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
