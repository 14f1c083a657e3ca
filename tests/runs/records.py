"""Run records built by hand, for tests of the code that reads them (the advice, the route
table, GraphQL): every field a real run has, with the figures a test cares about set and
plain defaults for the rest. They are real ``rung.runs`` models, validated as a file is."""

from __future__ import annotations

from collections.abc import Sequence

from rung.runs import (
    ClassifyQuality,
    CounterfactualRow,
    Latency,
    LoadLevel,
    MemoryMb,
    Metric,
    PredictionRow,
    RungCost,
    RungResult,
    RunResults,
    TaskSummary,
    Tokens,
)
from rung.runs.quality import ClassScores, Confusion

LABELS = ("negative", "neutral", "positive")


def quality(
    accuracy: float,
    ci: tuple[float, float],
    macro_f1: tuple[float, float, float] | None = None,
    labels: Sequence[str] = LABELS,
) -> ClassifyQuality:
    f1, f1_low, f1_high = macro_f1 or (accuracy, *ci)
    return ClassifyQuality(
        accuracy=Metric(value=accuracy, ci95=ci),
        macro_f1=Metric(value=f1, ci95=(f1_low, f1_high)),
        invalid=0,
        per_class={
            lab: ClassScores(precision=accuracy, recall=accuracy, f1=accuracy, support=1)
            for lab in labels
        },
        confusion=Confusion(
            labels=list(labels),
            columns=[*labels, "(invalid)"],
            matrix=[[0] * (len(labels) + 1) for _ in labels],
        ),
    )


def load_level(
    concurrency: int,
    p95: float,
    throughput: float,
    *,
    requests: int = 48,
    errors: int = 0,
    first_error: str | None = None,
) -> LoadLevel:
    return LoadLevel(
        concurrency=concurrency,
        requests=requests,
        errors=errors,
        wall_s=requests / throughput,
        throughput_per_s=throughput,
        output_tokens_per_s=0.0,
        latency_ms=Latency(p50=p95 / 2, p95=p95, p99=p95, mean=p95 / 2),
        first_error=first_error,
    )


def rung_result(
    label: str,
    accuracy: float = 0.8,
    ci: tuple[float, float] = (0.7, 0.9),
    *,
    model: str | None = None,
    n: int = 200,
    macro_f1: tuple[float, float, float] | None = None,
    p50: float | None = None,
    p95: float = 50.0,
    throughput: float = 10.0,
    params: int | None = None,
    file_size_bytes: int | None = None,
    tokens_in: float = 100.0,
    tokens_out: float = 1.0,
    load: list[LoadLevel] | None = None,
    cost_usd_per_1k: float | None = None,
    cost_detail: str = "",
    labels: Sequence[str] = LABELS,
) -> RungResult:
    return RungResult(
        model=model or f"test:{label}",
        label=label,
        n=n,
        quality=quality(accuracy, ci, macro_f1, labels),
        latency_ms=Latency(p50=p95 / 2 if p50 is None else p50, p95=p95, p99=p95, mean=p95 / 2),
        tokens=Tokens(
            in_=round(tokens_in * n),
            out=round(tokens_out * n),
            in_per_request=tokens_in,
            out_per_request=tokens_out,
        ),
        wall_s=n / throughput,
        throughput_per_s=throughput,
        concurrency=1,
        load=load,
        memory_mb=MemoryMb(
            peak_rss=None,
            baseline_rss=None,
            model_rss=None,
            peak_gpu=None,
            estimate=None,
            estimate_basis="not estimated",
            file=None,
        ),
        cost_usd_per_1k=cost_usd_per_1k,
        cost=RungCost(usd_per_1k=cost_usd_per_1k, basis="machine", detail=cost_detail),
        load_s=None,
        fit_s=None,
        params=params,
        file_size_bytes=file_size_bytes,
        quantization=None,
        context_length=None,
        path=None,
        cached=0,
    )


def run_results(
    rungs: Sequence[RungResult],
    *,
    name: str | None = "a test run",
    labels: Sequence[str] = LABELS,
    n_test: int = 200,
) -> RunResults:
    return RunResults(
        rung_version="0.0.0",
        name=name,
        created="2026-01-01T00:00:00Z",
        task=TaskSummary(
            type="classify",
            labels=list(labels),
            n_train=100,
            n_test=n_test,
            seed=0,
            data="/data/test.csv",
        ),
        rungs=list(rungs),
        counterfactual=[
            CounterfactualRow(
                model=r.model,
                label=r.label,
                usd_per_1k=r.cost_usd_per_1k,
                basis=r.cost.detail,
                in_ladder=True,
            )
            for r in rungs
        ],
    )


def prediction(
    rung: str,
    example: int | str,
    gold: str = "neutral",
    predicted: str | None = None,
    confidence: float | None = 0.5,
    *,
    model: str | None = None,
) -> PredictionRow:
    """One answer; ``predicted`` defaults to the gold answer."""
    return PredictionRow(
        rung=rung,
        model=model or rung,
        id=str(example),
        text=f"text {example}",
        gold=gold,
        predicted=gold if predicted is None else predicted,
        confidence=confidence,
        scores={},
        latency_ms=1.0,
        tokens_in=0,
        tokens_out=0,
        raw=None,
        cached=False,
    )
