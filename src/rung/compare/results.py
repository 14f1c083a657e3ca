"""Turning rung runs into figures, and writing the run folder in one step.

A run folder holds ``spec.yaml`` (the spec as run, defaults filled in and data paths made
absolute), ``results.json``, ``predictions.jsonl`` and ``report.md``. It is written into a
hidden sibling folder and renamed into place at the end, so a failure or an interrupt never
leaves a half-written run behind.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from rung import __version__
from rung.compare.runner import Prepared, RungRun
from rung.compare.spec import CompareSpec
from rung.errors import RunError
from rung.tasks import metrics

__all__ = ["check_out_dir", "rung_summary", "summarize", "write_run"]

RUN_MARKERS = ("results.json", "spec.yaml")


def check_out_dir(out: Path) -> None:
    """Refuse an output folder that holds something other than an earlier rung run."""
    if out.exists() and not out.is_dir():
        raise RunError(f"output path {out} is a file; choose a folder with --out")
    if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in RUN_MARKERS):
        raise RunError(
            f"output folder {out} is not empty and holds no rung run; choose another --out "
            "(rung replaces only folders it wrote)"
        )
    parent = out.parent if out.parent != Path("") else Path(".")
    if parent.exists() and not os.access(parent, os.W_OK):
        raise RunError(f"cannot write to {parent}; choose another --out")


def rung_summary(run: RungRun, labels: Sequence[str], resamples: int, seed: int) -> dict[str, Any]:
    gold = [r.gold for r in run.records]
    pred = [r.prediction.label for r in run.records]
    acc = metrics.bootstrap_ci(gold, pred, labels, "accuracy", resamples=resamples, seed=seed)
    f1 = metrics.bootstrap_ci(gold, pred, labels, "macro_f1", resamples=resamples, seed=seed)
    latencies = [r.latency_ms for r in run.records]
    tokens_in = sum(r.prediction.tokens_in for r in run.records)
    tokens_out = sum(r.prediction.tokens_out for r in run.records)
    n = len(run.records)
    info = run.info
    return {
        "model": run.model_id,
        "label": run.ref.display,
        "n": n,
        "quality": {
            "accuracy": {"value": acc.value, "ci95": list(acc.ci95)},
            "macro_f1": {"value": f1.value, "ci95": list(f1.ci95)},
            "invalid": sum(1 for p in pred if p is None),
            "per_class": {
                lab: {
                    "precision": c.precision,
                    "recall": c.recall,
                    "f1": c.f1,
                    "support": c.support,
                }
                for lab, c in metrics.per_class(gold, pred, labels).items()
            },
            "confusion": {
                "labels": list(labels),
                "columns": [*labels, "(invalid)"],
                "matrix": metrics.confusion_matrix(gold, pred, labels),
            },
        },
        "latency_ms": {
            "p50": metrics.percentile(latencies, 50),
            "p95": metrics.percentile(latencies, 95),
            "mean": sum(latencies) / n if n else 0.0,
        },
        "tokens": {
            "in": tokens_in,
            "out": tokens_out,
            "in_per_request": tokens_in / n if n else 0.0,
            "out_per_request": tokens_out / n if n else 0.0,
        },
        "wall_s": run.wall_s,
        "throughput_per_s": run.throughput_per_s,
        "concurrency": run.concurrency,
        "load_s": run.load_s,
        "fit_s": run.fit_s,
        "params": info.params,
        "file_size_bytes": info.file_size_bytes,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "path": info.path,
        "cached": run.cached,
    }


def summarize(prepared: Prepared, runs: Sequence[RungRun], base_dir: Path) -> dict[str, Any]:
    spec = prepared.spec
    labels = list(prepared.data.labels)
    return {
        "rung_version": __version__,
        "name": spec.name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "task": {
            "type": spec.task.type,
            "labels": labels,
            "n_train": len(prepared.data.train),
            "n_test": len(prepared.data.test),
            "seed": spec.task.seed,
            "data": str(_absolute(spec.task.data.path, base_dir)),
        },
        "rungs": [rung_summary(r, labels, spec.measure.bootstrap, spec.task.seed) for r in runs],
    }


def _absolute(path: Path, base_dir: Path) -> Path:
    return path if path.is_absolute() else (base_dir / path).resolve()


def spec_as_run(spec: CompareSpec, base_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = spec.model_dump(mode="json")
    data["task"]["data"]["path"] = str(_absolute(spec.task.data.path, base_dir))
    if spec.task.test_data is not None:
        data["task"]["test_data"]["path"] = str(_absolute(spec.task.test_data.path, base_dir))
    return data


def prediction_lines(runs: Sequence[RungRun]) -> list[str]:
    lines = []
    for run in runs:
        for rec in run.records:
            p = rec.prediction
            lines.append(
                json.dumps(
                    {
                        "rung": run.ref.display,
                        "model": run.model_id,
                        "id": rec.id,
                        "text": rec.text,
                        "gold": rec.gold,
                        "predicted": p.label,
                        "confidence": p.confidence,
                        "scores": p.scores,
                        "latency_ms": round(rec.latency_ms, 3),
                        "tokens_in": p.tokens_in,
                        "tokens_out": p.tokens_out,
                        "raw": p.raw,
                        "cached": rec.cached,
                    },
                    ensure_ascii=False,
                )
            )
    return lines


def write_run(out: Path, files: dict[str, str]) -> None:
    """Write ``files`` (name → text) as the folder ``out``, replacing an earlier run there."""
    check_out_dir(out)
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not out.exists():
            old.rename(out)
        raise
    shutil.rmtree(old, ignore_errors=True)


def run_files(
    prepared: Prepared,
    runs: Sequence[RungRun],
    base_dir: Path,
    report_md: str,
    results: dict[str, Any],
) -> dict[str, str]:
    return {
        "spec.yaml": yaml.safe_dump(
            spec_as_run(prepared.spec, base_dir), sort_keys=False, allow_unicode=True
        ),
        "results.json": json.dumps(results, indent=2, ensure_ascii=False) + "\n",
        "predictions.jsonl": "\n".join(prediction_lines(runs)) + "\n",
        "report.md": report_md,
    }
