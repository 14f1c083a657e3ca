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
from rung.catalog.costs import CostFigure, CostSpec, api_cost, machine_cost
from rung.compare.runner import Prepared, RungFailure, RungRun
from rung.compare.spec import CompareSpec
from rung.errors import RunError, RungError
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


MB = 2**20


def _memory_estimate_mb(run: RungRun, context: int) -> tuple[float | None, str]:
    """Weights + KV cache at ``context`` from the model's own metadata (GGUF header,
    config.json); None when the metadata does not tell."""
    from rung.catalog.cards import card_for

    base_url = run.ref.options.get("base_url")
    try:
        card = card_for(run.model_id, base_url=str(base_url) if base_url else None)
    except RungError as e:
        return None, str(e)
    if card.kind == "api":
        return None, "runs behind an API"
    estimate = card.memory(context)
    if estimate.total_bytes is None:
        return None, "; ".join(estimate.notes) or "metadata incomplete"
    return estimate.total_bytes / MB, f"weights + KV cache at {estimate.context} tokens"


def _best_throughput(run: RungRun) -> tuple[float, str]:
    levels = [lv for lv in (run.load or []) if lv["requests"] > 0 and not lv["errors"]]
    if levels:
        best = max(levels, key=lambda lv: lv["throughput_per_s"])
        return best["throughput_per_s"], f"at {best['concurrency']} concurrent"
    return run.throughput_per_s, "one at a time"


def rung_cost(run: RungRun, spec: CostSpec) -> CostFigure:
    n = len(run.records) or 1
    if run.billing == "tokens":  # the backend's profile says, for its endpoint
        tokens_in = sum(r.prediction.tokens_in for r in run.records) / n
        tokens_out = sum(r.prediction.tokens_out for r in run.records) / n
        return api_cost(run.model_id, tokens_in, tokens_out, spec)
    throughput, where = _best_throughput(run)
    return machine_cost(throughput, spec, where)


def rung_summary(
    run: RungRun, labels: Sequence[str], resamples: int, seed: int, spec: CompareSpec
) -> dict[str, Any]:
    gold = [r.gold for r in run.records]
    pred = [r.prediction.label for r in run.records]
    acc = metrics.bootstrap_ci(gold, pred, labels, "accuracy", resamples=resamples, seed=seed)
    f1 = metrics.bootstrap_ci(gold, pred, labels, "macro_f1", resamples=resamples, seed=seed)
    latencies = [r.latency_ms for r in run.records]
    tokens_in = sum(r.prediction.tokens_in for r in run.records)
    tokens_out = sum(r.prediction.tokens_out for r in run.records)
    n = len(run.records)
    info = run.info
    estimate, estimate_basis = _memory_estimate_mb(run, spec.measure.context)
    memory = dict(run.memory) if run.memory else {}
    cost = rung_cost(run, spec.cost)
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
            "p99": metrics.percentile(latencies, 99),
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
        "load": run.load,
        "memory_mb": {
            "peak_rss": memory.get("peak_rss"),
            "baseline_rss": memory.get("baseline_rss"),
            "model_rss": memory.get("model_rss"),
            "peak_gpu": memory.get("peak_gpu"),
            "estimate": estimate,
            "estimate_basis": estimate_basis,
            "file": info.file_size_bytes / MB if info.file_size_bytes else None,
        },
        "cost_usd_per_1k": cost.usd_per_1k,
        "cost": cost.to_json(),
        "load_s": run.load_s,
        "fit_s": run.fit_s,
        "params": info.params,
        "file_size_bytes": info.file_size_bytes,
        "quantization": info.quantization,
        "context_length": info.context_length,
        "path": info.path,
        "cached": run.cached,
    }


def counterfactual(runs: Sequence[RungRun], spec: CompareSpec) -> list[dict[str, Any]]:
    """What this workload costs per 1,000 requests on each rung, and on API models that were
    not run, priced with the token counts a generative rung measured (the tokenizers differ a
    little between models: an estimate)."""
    rows: list[dict[str, Any]] = []
    for run in runs:
        cost = rung_cost(run, spec.cost)
        rows.append(
            {
                "model": run.model_id,
                "label": run.ref.display,
                "usd_per_1k": cost.usd_per_1k,
                "basis": cost.detail,
                "in_ladder": True,
            }
        )
    counted = [r for r in runs if sum(x.prediction.tokens_out for x in r.records) > 0]
    reference = max(
        counted, key=lambda r: sum(x.prediction.tokens_in for x in r.records), default=None
    )
    ladder = {r.model_id for r in runs}
    for model_id in spec.cost.compare_with:
        if model_id in ladder:
            continue
        if reference is None:
            rows.append(
                {
                    "model": model_id,
                    "label": model_id,
                    "usd_per_1k": None,
                    "in_ladder": False,
                    "basis": "no generative rung counted the prompt's tokens",
                }
            )
            continue
        n = len(reference.records) or 1
        tokens_in = sum(x.prediction.tokens_in for x in reference.records) / n
        tokens_out = sum(x.prediction.tokens_out for x in reference.records) / n
        cost = api_cost(model_id, tokens_in, tokens_out, spec.cost)
        rows.append(
            {
                "model": model_id,
                "label": model_id,
                "usd_per_1k": cost.usd_per_1k,
                "basis": f"{cost.detail}; tokens counted by {reference.ref.display}",
                "in_ladder": False,
            }
        )
    return rows


def summarize(
    prepared: Prepared,
    runs: Sequence[RungRun],
    base_dir: Path,
    failures: Sequence[RungFailure] = (),
) -> dict[str, Any]:
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
        "rungs": [
            rung_summary(r, labels, spec.measure.bootstrap, spec.task.seed, spec) for r in runs
        ],
        "counterfactual": counterfactual(runs, spec),
        **({"failed": [f.to_json() for f in failures]} if failures else {}),
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
