"""rung's memory probe against an independent reading of the same process.

    python benchmarks/bench_memory.py [--models encoder:minilm-l6,llamacpp:...] [--every-ms 5]

For each rung, ``measure_memory`` runs the probe in a fresh interpreter, as ``rung compare``
does, and reports the peak resident set the kernel recorded there (``VmHWM``, read by the
child itself). Meanwhile this process watches the same child from outside: a thread polls its
resident set with psutil every ``--every-ms`` milliseconds, from the moment it starts until it
exits, and keeps the highest value. Goal (issue 3): the two agree within 5%.

Polling can only miss a peak, never invent one: a short spike between two samples makes the
polled figure lower, so a ratio probe/polled above 1 by a few percent is the expected shape of a
disagreement, and one below 1 would be a bug in the probe.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]  # no stubs in the venv

from rung.compare.probe import measure_memory
from rung.models import registry
from rung.models.base import ClassifyRequest
from rung.tasks.classify import ClassifyTask, DataSource, TaskData, build_requests
from rung.tasks.data import read_examples

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
FPB = DATA / "financial_phrasebank" / "Sentences_AllAgree.txt"
LABELS = ("negative", "neutral", "positive")
MODELS = ("encoder:minilm-l6", "llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m")
TOLERANCE = 0.05
MB = 2**20


@dataclass
class Poller:
    """Polls one process's RSS from outside until the process is gone."""

    every_s: float
    peak_bytes: int = 0
    samples: int = 0
    thread: threading.Thread | None = field(default=None, repr=False)

    def start(self, pid: int) -> None:
        self.thread = threading.Thread(target=self._run, args=(pid,), daemon=True)
        self.thread.start()

    def _run(self, pid: int) -> None:
        try:
            process = psutil.Process(pid)
            while process.status() != psutil.STATUS_ZOMBIE:
                self.peak_bytes = max(self.peak_bytes, process.memory_info().rss)
                self.samples += 1
                time.sleep(self.every_s)
        except psutil.NoSuchProcess:
            pass  # it exited between two samples: the peak is what was seen before

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=30)


def task_inputs(n_requests: int, n_train: int) -> tuple[list[ClassifyRequest], dict[str, Any]]:
    """A few financial phrasebank requests with the task's prompt, and a training split for
    the rungs that train (the encoder's head)."""
    examples = read_examples(FPB)
    random.Random(0).shuffle(examples)
    train, test = examples[:n_train], examples[n_train : n_train + n_requests]
    task = ClassifyTask(data=DataSource(path=FPB), labels=list(LABELS))
    requests = build_requests(task, TaskData(train=train, test=test, labels=LABELS))
    return requests, {
        "texts": [ex.text for ex in train],
        "labels": [ex.label for ex in train],
        "label_set": list(LABELS),
    }


def file_size_mb(model_id: str) -> float | None:
    """The model's size on disk. Asked in the parent first, so that finding the file (gemma's
    four chunks are assembled once) does not happen inside the probe."""
    model = registry.create(model_id, {})
    model.check()
    size = model.info().file_size_bytes
    return size / MB if size else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--models", default=",".join(MODELS), help="model ids, comma-separated")
    parser.add_argument("--every-ms", type=float, default=5.0, help="psutil polling interval")
    parser.add_argument("--requests", type=int, default=4, help="requests the probe answers")
    parser.add_argument("--train", type=int, default=100, help="training examples (encoder)")
    args = parser.parse_args()
    requests, train = task_inputs(args.requests, args.train)

    rows = []
    for model_id in args.models.split(","):
        size = file_size_mb(model_id)
        poller = Poller(args.every_ms / 1000)
        needs_train = registry.create(model_id, {}).needs_training
        started = time.perf_counter()
        reading = measure_memory(
            model_id, {}, requests, train if needs_train else None, on_start=poller.start
        )
        poller.join()
        took = time.perf_counter() - started
        polled = poller.peak_bytes / MB
        ratio = reading["peak_rss"] / polled if polled else float("nan")
        rows.append((model_id, reading, polled, ratio, size, poller.samples, took))
        print(
            f"{model_id}: probe {reading}, polled peak {polled:.1f} MB ({poller.samples} samples)"
        )

    print(
        f"\n{'model':32} {'probe peak':>10} {'polled':>9} {'ratio':>6} {'baseline':>9} "
        f"{'model_rss':>9} {'file':>8} {'samples':>7} {'s':>5}"
    )
    ok = True
    for model_id, reading, polled, ratio, size, samples, took in rows:
        agree = abs(ratio - 1) <= TOLERANCE
        ok &= agree
        print(
            f"{model_id:32} {reading['peak_rss']:10.1f} {polled:9.1f} {ratio:6.3f} "
            f"{reading['baseline_rss']:9.1f} {reading['model_rss']:9.1f} "
            f"{size if size is not None else float('nan'):8.1f} {samples:7} {took:5.1f}"
            + ("" if agree else f"  DIFFER BY MORE THAN {TOLERANCE:.0%}")
        )
    print(
        f"\nMB (2**20 bytes). goal: probe and polled peaks agree within {TOLERANCE:.0%} -> "
        f"{'ok' if ok else 'NOT MET'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
