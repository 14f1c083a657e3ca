"""The ONNX int8 rung against the PyTorch rung it was exported from, side by side in one run.

    python benchmarks/bench_onnx.py --model runs/models/fpb-minilm   # a folder from rung tune
    python benchmarks/bench_onnx.py                                  # tunes one first (minutes)

On the financial phrasebank (AllAgree, the held-out 20% of a seed-0 split, as compare and
bench_tune.py draw it), through rung's own backends (registry.create -> load -> classify):
``encoder:<tuned folder>`` (PyTorch), ``onnx:<export>`` with its fp32 graph and with its int8
graph: sentences/s at batch 32 (the whole test split) and at batch 1 (the first
``--batch1-texts``), with the same thread count, and accuracy on the whole split. Goal: int8 at
least 2x the sentences/s of the PyTorch rung at batch 32, accuracy within 1 point.

Repeats are interleaved (each repeat runs every rung once, in turn) and the median taken: the
machine may be shared with other work, so read the ratios, not the absolute figures. Exit status
1 when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("RUNG_SHARED_DATA", REPO.parent / "shared" / "data"))
FPB = DATA / "financial_phrasebank" / "Sentences_AllAgree.txt"
LABELS = ("negative", "neutral", "positive")
GOAL_SPEEDUP = 2.0
GOAL_POINTS = 1.0
BASE = "pytorch  encoder:"


def _split() -> Any:
    from rung.tasks.classify import ClassifyTask, DataSource, load_task_data

    task = ClassifyTask(data=DataSource(path=FPB), labels=list(LABELS), test_size=0.2, seed=0)
    return load_task_data(task, REPO)


def _tune(data: Any, out: Path, epochs: int | None, threads: int) -> Path:
    from rung.tune import TuneOptions, tune_classifier

    options = TuneOptions(threads=threads)
    if epochs is not None:
        options = TuneOptions(threads=threads, epochs=epochs)
    print(
        f"no --model: fine-tuning encoder:minilm-l6 on {len(data.train)} sentences "
        f"({options.epochs} epochs, rung.tune.tune_classifier)...",
        flush=True,
    )
    started = time.perf_counter()
    tune_classifier(
        "encoder:minilm-l6",
        [ex.text for ex in data.train],
        [ex.label for ex in data.train],
        list(LABELS),
        out,
        options,
    )
    print(f"tuned in {time.perf_counter() - started:.0f} s: {out}")
    return out


def _requests(texts: list[str]) -> list[Any]:
    from rung.models.base import ClassifyRequest

    return [ClassifyRequest(text=t, labels=LABELS, messages=()) for t in texts]


def _rate(model: Any, requests: list[Any], batch: int) -> float:
    """Sentences per second, one classify call per ``batch`` requests, as a caller sees it."""

    async def run() -> None:
        for i in range(0, len(requests), batch):
            await model.classify(requests[i : i + batch])

    started = time.perf_counter()
    asyncio.run(run())
    return len(requests) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", type=Path, help="A classifier folder written by rung tune.")
    parser.add_argument(
        "--threads", type=int, default=2, help="CPU threads for every rung (torch and ORT)."
    )
    parser.add_argument("--repeats", type=int, default=3, help="Interleaved repeats (median).")
    parser.add_argument("--batch1-texts", type=int, default=100, help="Texts timed at batch 1.")
    parser.add_argument(
        "--epochs", type=int, help="Epochs when tuning (no --model); default: rung tune's."
    )
    parser.add_argument(
        "--keep", action="store_true", help="Keep the exported (and tuned) folders."
    )
    args = parser.parse_args()

    import torch

    from rung.export.onnx import export_onnx
    from rung.models import registry

    torch.set_num_threads(args.threads)
    data = _split()
    work = Path(tempfile.mkdtemp(prefix="bench-onnx-"))
    try:
        model_dir = args.model or _tune(data, work / "fpb-minilm", args.epochs, args.threads)
        exported = export_onnx(model_dir, work / "fpb-minilm-onnx")
        onnx_dir = exported.out
        rungs = {
            BASE: registry.create(f"encoder:{model_dir}", {"batch_size": 32}),
            "onnx fp32": registry.create(
                f"onnx:{onnx_dir}",
                {"file": "model.onnx", "threads": args.threads, "batch_size": 32},
            ),
            "onnx int8": registry.create(
                f"onnx:{onnx_dir}", {"threads": args.threads, "batch_size": 32}
            ),
        }
        texts = [ex.text for ex in data.test]
        gold = [ex.label for ex in data.test]
        requests = _requests(texts)
        accuracy: dict[str, float] = {}
        sizes: dict[str, int | None] = {}
        for name, model in rungs.items():
            model.load()
            # the accuracy pass doubles as the warm-up
            preds = asyncio.run(model.classify(requests))
            accuracy[name] = sum(p.label == g for p, g in zip(preds, gold, strict=True)) / len(gold)
            sizes[name] = model.info().file_size_bytes
        rates: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.repeats):
            for batch, sample in ((32, requests), (1, requests[: args.batch1_texts])):
                for name, model in rungs.items():
                    rates.setdefault((name, batch), []).append(_rate(model, sample, batch))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def median(name: str, batch: int) -> float:
        return statistics.median(rates[(name, batch)])

    print(
        f"\nfinancial phrasebank AllAgree, held-out 20% (seed 0): {len(texts)} sentences; "
        f"{args.threads} threads; median of {args.repeats} interleaved repeats"
    )
    print(
        f"{'rung':18} {'size':>8} {'accuracy':>9} {'sent/s b32':>11} {'vs torch':>9} "
        f"{'sent/s b1':>10} {'vs torch':>9}"
    )
    for name in rungs:
        size_bytes = sizes[name]
        size = f"{size_bytes / 1e6:.0f} MB" if size_bytes else "?"
        print(
            f"{name:18} {size:>8} {accuracy[name]:9.4f} {median(name, 32):11.1f} "
            f"{median(name, 32) / median(BASE, 32):8.2f}x {median(name, 1):10.1f} "
            f"{median(name, 1) / median(BASE, 1):8.2f}x"
        )
    speedup = median("onnx int8", 32) / median(BASE, 32)
    lost = (accuracy[BASE] - accuracy["onnx int8"]) * 100
    speed_ok, acc_ok = speedup >= GOAL_SPEEDUP, lost <= GOAL_POINTS
    print(
        f"\ngoal: int8 >= {GOAL_SPEEDUP:g}x the PyTorch rung's sentences/s at batch 32: "
        f"{'met' if speed_ok else 'NOT MET'} ({speedup:.2f}x; at batch 1 "
        f"{median('onnx int8', 1) / median(BASE, 1):.2f}x)"
    )
    print(
        f"goal: accuracy within {GOAL_POINTS:g} point: {'met' if acc_ok else 'NOT MET'} "
        f"({-lost:+.2f} points)"
    )
    if args.keep:
        print(f"folders kept in {work}")
    return 0 if speed_ok and acc_ok else 1


if __name__ == "__main__":
    sys.exit(main())
