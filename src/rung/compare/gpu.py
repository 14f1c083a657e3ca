"""Peak GPU memory of one process, as the NVIDIA driver reports it.

torch's ``max_memory_allocated`` sees only torch's own tensors; llama.cpp's CUDA buffers, the
CUDA context and cuBLAS workspaces are invisible to it. NVML (``nvidia-ml-py``) reports what
the driver has given each process, whoever asked for it, so the memory probe samples it in a
thread while the rung loads and answers. On a machine without an NVIDIA driver the sampler
reports None. Inside a container with its own PID namespace the driver's PIDs may not match
``os.getpid()``; then nothing is found and the reading is None too, never a guess.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from types import TracebackType

__all__ = ["GpuSampler", "nvml_reader"]

Reader = Callable[[], int | None]


def nvml_reader(pid: int) -> Reader | None:
    """A function returning the bytes of GPU memory ``pid`` holds on all devices, or None when
    NVML is not available here."""
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
    except pynvml.NVMLError:
        return None
    if not handles:
        return None

    def read() -> int | None:
        total, seen = 0, False
        for handle in handles:
            for proc in pynvml.nvmlDeviceGetComputeRunningProcesses(handle):
                if proc.pid == pid and proc.usedGpuMemory is not None:
                    total += int(proc.usedGpuMemory)
                    seen = True
        return total if seen else None

    return read


class GpuSampler:
    """Samples ``read`` every ``interval_s`` in a daemon thread; ``peak_mb`` is the highest
    reading, or None when there was no reading at all."""

    def __init__(self, read: Reader | None = None, interval_s: float = 0.02) -> None:
        self._read = read if read is not None else nvml_reader(os.getpid())
        self._interval = interval_s
        self._peak: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        assert self._read is not None
        value = self._read()
        if value is not None and (self._peak is None or value > self._peak):
            self._peak = value

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self._interval)

    def __enter__(self) -> GpuSampler:
        if self._read is not None:
            self._thread = threading.Thread(target=self._loop, name="rung-gpu-sampler", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._sample()  # one last reading, after the work ended

    @property
    def peak_mb(self) -> float | None:
        return None if self._peak is None else self._peak / 2**20
