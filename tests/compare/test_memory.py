"""The memory probe on the bundled encoder and SmolLM2, each in its own fresh process, checked
against psutil polling the same process from outside."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv
import pytest

from rung.compare.memory import peak_rss_mb, rss_mb
from rung.compare.probe import measure_memory
from rung.errors import RungError
from rung.models import registry
from rung.models.base import ClassifyRequest
from rung.tasks.classify import ClassifyTask, DataSource, TaskData, build_requests
from rung.tasks.data import read_examples

LABELS = ("negative", "neutral", "positive")
MB = 2**20


@pytest.fixture(scope="module")
def inputs(fpb_path: Path) -> tuple[list[ClassifyRequest], dict[str, Any]]:
    """Two requests with the task's prompt, and 24 training examples for the encoder's head."""
    examples = read_examples(fpb_path)
    train = [ex for label in LABELS for ex in [e for e in examples if e.label == label][:8]]
    test = [examples[-1], examples[-2]]
    task = ClassifyTask(data=DataSource(path=fpb_path), labels=list(LABELS))
    requests = build_requests(task, TaskData(train=train, test=test, labels=LABELS))
    split = {
        "texts": [ex.text for ex in train],
        "labels": [ex.label for ex in train],
        "label_set": list(LABELS),
    }
    return requests, split


class _Poller:
    """psutil's reading of the probe's resident set, polled from this process every 5 ms."""

    def __init__(self) -> None:
        self.peak = 0
        self.samples = 0
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        self._thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self._thread.start()

    def _run(self, pid: int) -> None:
        try:
            process = psutil.Process(pid)
            while process.status() != psutil.STATUS_ZOMBIE:
                self.peak = max(self.peak, process.memory_info().rss)
                self.samples += 1
                time.sleep(0.005)
        except psutil.NoSuchProcess:
            pass

    def peak_mb(self) -> float:
        assert self._thread is not None
        self._thread.join(timeout=30)
        return self.peak / MB


def _probe(
    model_id: str, inputs: tuple[list[ClassifyRequest], dict[str, Any]], train: bool
) -> Callable[[], tuple[dict[str, Any], float, int]]:
    def run() -> tuple[dict[str, Any], float, int]:
        poller = _Poller()
        requests, split = inputs
        reading = measure_memory(
            model_id, {}, requests, split if train else None, timeout_s=120, on_start=poller.start
        )
        return reading, poller.peak_mb(), poller.samples

    return run


def test_probe_on_the_encoder_and_smollm2_agrees_with_psutil(
    inputs: tuple[list[ClassifyRequest], dict[str, Any]],
) -> None:
    sizes = {}
    for model_id in ("encoder:minilm-l6", "llamacpp:smollm2-135m-instruct"):
        model = registry.create(model_id, {})
        model.check()
        sizes[model_id] = (model.info().file_size_bytes or 0) / MB
    # The two probes are separate processes: run them side by side to halve the wait.
    with ThreadPoolExecutor(2) as pool:
        encoder = pool.submit(_probe("encoder:minilm-l6", inputs, train=True))
        smollm = pool.submit(_probe("llamacpp:smollm2-135m-instruct", inputs, train=False))
        readings = {
            "encoder:minilm-l6": encoder.result(),
            "llamacpp:smollm2-135m-instruct": smollm.result(),
        }

    for reading, polled, samples in readings.values():
        assert set(reading) == {"peak_rss", "baseline_rss", "model_rss", "peak_gpu"}
        assert reading["peak_gpu"] is None  # no CUDA here
        # An interpreter with rung imported: tens of MB, not a few, not a model's worth.
        assert 20 < reading["baseline_rss"] < 200
        assert reading["peak_rss"] > reading["baseline_rss"]
        assert reading["model_rss"] == pytest.approx(reading["peak_rss"] - reading["baseline_rss"])
        # The same process read from outside: polling can only miss a peak, never add one.
        assert samples > 10
        assert polled == pytest.approx(reading["peak_rss"], rel=0.05)
        assert polled <= reading["peak_rss"] * 1.01
    size = sizes["llamacpp:smollm2-135m-instruct"]
    assert 80 < size < 110
    # SmolLM2's weights are mapped in whole, plus llama.cpp's buffers and KV cache.
    assert size < readings["llamacpp:smollm2-135m-instruct"][0]["model_rss"] < 4 * size
    # MiniLM's weights are 87 MB; torch and transformers, imported by load(), count too.
    size = sizes["encoder:minilm-l6"]
    assert 60 < size < 120
    assert size < readings["encoder:minilm-l6"][0]["model_rss"] < 12 * size


def test_probe_errors_name_the_rung_and_what_to_do(
    inputs: tuple[list[ClassifyRequest], dict[str, Any]],
) -> None:
    requests, _ = inputs
    with pytest.raises(RungError, match=r"llamacpp:no-such-model failed: .*unknown llamacpp"):
        measure_memory("llamacpp:no-such-model", {}, requests)
    with pytest.raises(RungError, match=r"encoder:minilm-l6 cannot run: .*pass the training split"):
        measure_memory("encoder:minilm-l6", {}, requests, train=None)


def test_probe_time_out_is_a_rung_error(
    inputs: tuple[list[ClassifyRequest], dict[str, Any]],
) -> None:
    requests, _ = inputs
    started = time.perf_counter()
    with pytest.raises(RungError, match=r"took longer than 0.5 s"):
        measure_memory("llamacpp:smollm2-135m-instruct", {}, requests, timeout_s=0.5)
    assert time.perf_counter() - started < 5


def test_readings_of_this_process() -> None:
    assert 0 < rss_mb() <= peak_rss_mb()
    assert rss_mb() == pytest.approx(psutil.Process().memory_info().rss / MB, rel=0.05)
