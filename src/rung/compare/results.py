"""Turning rung runs into the run record: ``RunResults`` (results.json) and ``PredictionRow``s
(predictions.jsonl). ``rung.runs.RunFolder`` writes them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rung import __version__
from rung.catalog.costs import CostFigure, CostSpec, api_cost, machine_cost
from rung.compare.runner import Prepared, RungFailure, RungRun
from rung.errors import RungError
from rung.models.profile import Pricing
from rung.runs.quality import ClassifyQuality, ClassScores, Confusion, Metric
from rung.runs.record import (
    BaselineRow,
    CounterfactualRow,
    FailedRung,
    Latency,
    LoadLevel,
    MemoryMb,
    PredictionRow,
    RungCalibration,
    RungCost,
    RungResult,
    RunResults,
    TaskSummary,
    Tokens,
)
from rung.runs.spec import CompareSpec, spec_as_run
from rung.tasks import metrics
from rung.tasks.baselines import majority_baseline, random_baseline

__all__ = [
    "baselines",
    "cost_figure",
    "counterfactual",
    "memory_estimate_mb",
    "memory_record",
    "prediction_rows",
    "record_cost",
    "rung_cost",
    "rung_summary",
    "summarize",
]


MB = 2**20


def memory_estimate_mb(
    model_id: str, options: dict[str, Any], context: int
) -> tuple[float | None, str]:
    """Weights + KV cache at ``context`` from the model's own metadata (GGUF header,
    config.json); None when the metadata does not tell."""
    from rung.catalog.cards import card_for

    base_url = options.get("base_url")
    try:
        card = card_for(model_id, base_url=str(base_url) if base_url else None)
    except RungError as e:
        return None, str(e)
    if card.kind == "api":
        return None, "runs behind an API"
    estimate = card.memory(context)
    if estimate.total_bytes is None:
        return None, "; ".join(estimate.notes) or "metadata incomplete"
    return estimate.total_bytes / MB, f"weights + KV cache at {estimate.context} tokens"


def memory_record(
    reading: dict[str, Any] | None, estimate: tuple[float | None, str], file_bytes: int | None
) -> MemoryMb:
    """The record's memory figures: the fresh process's reading (None when not measured),
    the estimate from metadata and its basis, the size of the model's files."""
    memory = reading or {}
    return MemoryMb(
        peak_rss=memory.get("peak_rss"),
        baseline_rss=memory.get("baseline_rss"),
        model_rss=memory.get("model_rss"),
        peak_gpu=memory.get("peak_gpu"),
        estimate=estimate[0],
        estimate_basis=estimate[1],
        file=file_bytes / MB if file_bytes else None,
    )


def _best_throughput(
    throughput_per_s: float, load: Sequence[dict[str, Any]] | None
) -> tuple[float, str]:
    levels = [lv for lv in (load or []) if lv["requests"] > 0 and not lv["errors"]]
    if levels:
        best = max(levels, key=lambda lv: lv["throughput_per_s"])
        return best["throughput_per_s"], f"at {best['concurrency']} concurrent"
    return throughput_per_s, "one at a time"


def cost_figure(
    model_id: str,
    billing: Pricing,
    tokens_per_request: tuple[float, float],
    throughput_per_s: float,
    load: Sequence[dict[str, Any]] | None,
    spec: CostSpec,
) -> CostFigure:
    """Cost of 1,000 requests: the tokens (in, out per request) at the model's price when it
    is paid per token, else machine time at the best throughput measured."""
    if billing == "tokens":  # the backend's profile says, for its endpoint
        return api_cost(model_id, tokens_per_request[0], tokens_per_request[1], spec)
    throughput, where = _best_throughput(throughput_per_s, load)
    return machine_cost(throughput, spec, where)


def rung_cost(run: RungRun, spec: CostSpec) -> CostFigure:
    n = len(run.records) or 1
    tokens_in = sum(r.prediction.tokens_in for r in run.records) / n
    tokens_out = sum(r.prediction.tokens_out for r in run.records) / n
    return cost_figure(
        run.model_id, run.billing, (tokens_in, tokens_out), run.throughput_per_s, run.load, spec
    )


def _classify_quality(
    run: RungRun, labels: Sequence[str], resamples: int, seed: int, *, raw: bool = False
) -> ClassifyQuality:
    gold = [r.gold for r in run.records]
    pred = [(r.raw or r.prediction).label if raw else r.prediction.label for r in run.records]
    acc = metrics.bootstrap_ci(gold, pred, labels, "accuracy", resamples=resamples, seed=seed)
    f1 = metrics.bootstrap_ci(gold, pred, labels, "macro_f1", resamples=resamples, seed=seed)
    return ClassifyQuality(
        accuracy=Metric(value=acc.value, ci95=acc.ci95),
        macro_f1=Metric(value=f1.value, ci95=f1.ci95),
        invalid=sum(1 for p in pred if p is None),
        per_class={
            lab: ClassScores(precision=c.precision, recall=c.recall, f1=c.f1, support=c.support)
            for lab, c in metrics.per_class(gold, pred, labels).items()
        },
        confusion=Confusion(
            labels=list(labels),
            columns=[*labels, "(invalid)"],
            matrix=metrics.confusion_matrix(gold, pred, labels),
        ),
    )


def record_cost(figure: CostFigure) -> RungCost:
    return RungCost(usd_per_1k=figure.usd_per_1k, basis=figure.basis, detail=figure.detail)


def rung_summary(
    run: RungRun, labels: Sequence[str], resamples: int, seed: int, spec: CompareSpec
) -> RungResult:
    latencies = [r.latency_ms for r in run.records]
    tokens_in = sum(r.prediction.tokens_in for r in run.records)
    tokens_out = sum(r.prediction.tokens_out for r in run.records)
    n = len(run.records)
    info = run.info
    cost = rung_cost(run, spec.cost)
    return RungResult(
        model=run.model_id,
        label=run.ref.display,
        n=n,
        quality=_classify_quality(run, labels, resamples, seed),
        latency_ms=Latency(
            p50=metrics.percentile(latencies, 50),
            p95=metrics.percentile(latencies, 95),
            p99=metrics.percentile(latencies, 99),
            mean=sum(latencies) / n if n else 0.0,
        ),
        tokens=Tokens(
            in_=tokens_in,
            out=tokens_out,
            in_per_request=tokens_in / n if n else 0.0,
            out_per_request=tokens_out / n if n else 0.0,
        ),
        wall_s=run.wall_s,
        throughput_per_s=run.throughput_per_s,
        concurrency=run.concurrency,
        load=None if run.load is None else [LoadLevel.model_validate(lv) for lv in run.load],
        memory_mb=memory_record(
            run.memory,
            memory_estimate_mb(run.model_id, run.ref.options, spec.measure.context),
            info.file_size_bytes,
        ),
        cost_usd_per_1k=cost.usd_per_1k,
        cost=record_cost(cost),
        load_s=run.load_s,
        fit_s=run.fit_s,
        params=info.params,
        file_size_bytes=info.file_size_bytes,
        quantization=info.quantization,
        context_length=info.context_length,
        path=info.path,
        cached=run.cached,
        quality_raw=(
            _classify_quality(run, labels, resamples, seed, raw=True)
            if any(r.raw is not None for r in run.records)
            else None
        ),
        calibration=(RungCalibration.model_validate(run.calibration) if run.calibration else None),
    )


def baselines(prepared: Prepared, resamples: int, seed: int) -> list[BaselineRow]:
    """Always the majority class of the training split, and uniform guessing, on the test set."""
    data = prepared.data
    gold = [ex.label for ex in data.test]
    found = [
        majority_baseline(
            [ex.label for ex in data.train], gold, data.labels, resamples=resamples, seed=seed
        ),
        random_baseline(gold, data.labels, resamples=resamples, seed=seed),
    ]
    return [
        BaselineRow(
            name=b.name,
            rule=b.rule,
            accuracy=Metric(value=b.accuracy.value, ci95=b.accuracy.ci95),
            macro_f1=Metric(value=b.macro_f1.value, ci95=b.macro_f1.ci95),
        )
        for b in found
    ]


def counterfactual(runs: Sequence[RungRun], spec: CompareSpec) -> list[CounterfactualRow]:
    """What this workload costs per 1,000 requests on each rung, and on API models that were
    not run, priced with the token counts a generative rung measured (the tokenizers differ a
    little between models: an estimate)."""
    rows: list[CounterfactualRow] = []
    for run in runs:
        cost = rung_cost(run, spec.cost)
        rows.append(
            CounterfactualRow(
                model=run.model_id,
                label=run.ref.display,
                usd_per_1k=cost.usd_per_1k,
                basis=cost.detail,
                in_ladder=True,
            )
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
                CounterfactualRow(
                    model=model_id,
                    label=model_id,
                    usd_per_1k=None,
                    basis="no generative rung counted the prompt's tokens",
                    in_ladder=False,
                )
            )
            continue
        n = len(reference.records) or 1
        tokens_in = sum(x.prediction.tokens_in for x in reference.records) / n
        tokens_out = sum(x.prediction.tokens_out for x in reference.records) / n
        cost = api_cost(model_id, tokens_in, tokens_out, spec.cost)
        rows.append(
            CounterfactualRow(
                model=model_id,
                label=model_id,
                usd_per_1k=cost.usd_per_1k,
                basis=f"{cost.detail}; tokens counted by {reference.ref.display}",
                in_ladder=False,
            )
        )
    return rows


def summarize(
    prepared: Prepared,
    runs: Sequence[RungRun],
    base_dir: Path,
    failures: Sequence[RungFailure] = (),
) -> RunResults:
    spec = prepared.spec
    labels = list(prepared.data.labels)
    return RunResults(
        rung_version=__version__,
        name=spec.name,
        created=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        task=TaskSummary(
            type=spec.task.type,
            labels=labels,
            n_train=len(prepared.data.train),
            n_test=len(prepared.data.test),
            seed=spec.task.seed,
            data=str(spec_as_run(spec, base_dir).task.data.path),
        ),
        rungs=[rung_summary(r, labels, spec.measure.bootstrap, spec.task.seed, spec) for r in runs],
        counterfactual=counterfactual(runs, spec),
        baselines=baselines(prepared, spec.measure.bootstrap, spec.task.seed),
        failed=[
            FailedRung(
                label=f.label, model=f.model_id, error=f.error, signal=f.signal, stage=f.stage
            )
            for f in failures
        ],
    )


def prediction_rows(runs: Sequence[RungRun]) -> list[PredictionRow]:
    """Every rung's answer to every test example, rung by rung, in test order."""
    return [
        PredictionRow(
            rung=run.ref.display,
            model=run.model_id,
            id=rec.id,
            text=rec.text,
            gold=rec.gold,
            predicted=rec.prediction.label,
            confidence=rec.prediction.confidence,
            scores=rec.prediction.scores,
            latency_ms=round(rec.latency_ms, 3),
            tokens_in=rec.prediction.tokens_in,
            tokens_out=rec.prediction.tokens_out,
            raw=rec.prediction.raw,
            cached=rec.cached,
            predicted_raw=rec.raw.label if rec.raw is not None else None,
            scores_raw=rec.raw.scores if rec.raw is not None else None,
        )
        for run in runs
        for rec in run.records
    ]
