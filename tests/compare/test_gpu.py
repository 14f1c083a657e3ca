"""The GPU sampler of the memory probe. The driver is replaced by a scripted reader where the
sampling itself is under test; on this machine (no NVIDIA driver) the real reader must say
"no reading", never a number."""

from __future__ import annotations

import os
import threading
import time

from rung.compare.gpu import GpuSampler, nvml_reader
from rung.compare.memory import gpu_peak_mb


class ScriptedDriverDouble:
    """Stands in for NVML: returns the scripted byte counts in turn, then the last one."""

    def __init__(self, values: list[int | None]) -> None:
        self.values = values
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> int | None:
        with self.lock:
            value = self.values[min(self.calls, len(self.values) - 1)]
            self.calls += 1
            return value


def test_peak_is_the_highest_reading_while_work_runs() -> None:
    driver = ScriptedDriverDouble([None, 100 * 2**20, 900 * 2**20, 300 * 2**20])
    with GpuSampler(driver, interval_s=0.001) as sampler:
        while driver.calls < 5:
            time.sleep(0.001)
    assert sampler.peak_mb == 900.0


def test_no_reading_is_none_not_zero() -> None:
    with GpuSampler(ScriptedDriverDouble([None]), interval_s=0.001) as sampler:
        time.sleep(0.01)
    assert sampler.peak_mb is None


def test_without_a_driver_there_is_no_gpu_figure() -> None:
    if nvml_reader(os.getpid()) is not None:  # a machine with an NVIDIA driver
        return
    with GpuSampler() as sampler:
        time.sleep(0.01)
    assert sampler.peak_mb is None
    assert gpu_peak_mb(sampler.peak_mb) is None


def test_driver_reading_wins_over_torch_counter() -> None:
    # With no CUDA here torch has no counter: the driver's figure is taken as is.
    assert gpu_peak_mb(512.0) == 512.0
