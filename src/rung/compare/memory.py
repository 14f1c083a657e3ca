"""Memory readings of this process: what the memory probe reports.

The probe (``rung.compare.probe.measure_memory``) runs each rung in a fresh process so that
no rung's memory counts toward another's, and reads there what the kernel recorded: the peak
resident set (``VmHWM`` in /proc/self/status, falling back to ``getrusage``), the resident set
before the model was loaded, and the peak GPU memory.
"""

from __future__ import annotations

import os
import resource
import sys
from dataclasses import dataclass
from typing import Any

__all__ = ["MemoryReading", "gpu_peak_mb", "peak_rss_mb", "rss_mb"]


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


def gpu_peak_mb(driver_mb: float | None) -> float | None:
    """The driver's reading (every CUDA allocation of the process) when there is one, else
    torch's own counter, else None: no GPU was used, or none is here."""
    torch = sys.modules.get("torch")
    torch_mb = None
    if torch is not None and torch.cuda.is_available():
        torch_mb = float(torch.cuda.max_memory_allocated()) / 2**20
    readings = [m for m in (driver_mb, torch_mb) if m is not None]
    return max(readings) if readings else None
