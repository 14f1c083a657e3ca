"""The figures the advice works on: the user's constraints, a rung's measured results, and
the outcome of checking one against the other."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from rung.catalog.cards import ModelCard
from rung.errors import DataError
from rung.runs.quality import Metric
from rung.runs.record import RungResult, RunResults, classify_quality

__all__ = [
    "CONSTRAINT_SHORT",
    "CONSTRAINT_WORDS",
    "QUALITY",
    "Assessment",
    "Check",
    "Constraints",
    "Interval",
    "LoadPoint",
    "RungFigures",
    "Status",
    "metric_of",
    "metric_word",
    "parse_results",
]
QUALITY = ("min_accuracy", "min_macro_f1", "tied_with_best", "beats_guessing")
#: a word per constraint, for tables
CONSTRAINT_SHORT = {
    "beats_guessing": "guessing",
    "min_accuracy": "accuracy",
    "min_macro_f1": "macro-F1",
    "max_p95_ms": "latency",
    "max_cost_per_1k": "cost",
    "device": "memory",
    "on_prem": "on-prem",
    "concurrency": "concurrency",
    "tied_with_best": "below best",
}
CONSTRAINT_WORDS = {
    "beats_guessing": "being better than guessing",
    "min_accuracy": "the accuracy floor",
    "min_macro_f1": "the macro-F1 floor",
    "max_p95_ms": "the latency limit",
    "max_cost_per_1k": "the budget",
    "device": "the device's memory",
    "on_prem": "the on-premises rule",
    "concurrency": "the concurrency target",
    "tied_with_best": "being tied with the best",
}

Status = Literal["pass", "fail", "unknown"]


@dataclass(frozen=True)
class Constraints:
    """What the user requires. Quality floors are fractions (0.85), not percentages."""

    min_accuracy: float | None = None
    min_macro_f1: float | None = None
    max_p95_ms: float | None = None
    max_cost_per_1k: float | None = None  # USD per 1,000 requests
    device: str | None = None  # a device class name (rung.catalog.devices)
    on_prem: bool = False  # data must stay on premises: API rungs are excluded
    concurrency: int | None = None  # concurrent users the rung must serve
    hourly_price: float | None = None  # USD per hour of the machine running local rungs
    context: int = 4096  # tokens of context the memory check is made at

    @property
    def has_floor(self) -> bool:
        return self.min_accuracy is not None or self.min_macro_f1 is not None


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def overlaps(self, other: Interval) -> bool:
        return self.low <= other.high and other.low <= self.high

    def show(self) -> str:
        return f"{self.value:.3f} [{self.low:.2f}–{self.high:.2f}]"


@dataclass(frozen=True)
class LoadPoint:
    """One level of a load test (``rung.runs.LoadLevel``)."""

    concurrency: int
    p95_ms: float | None
    throughput_per_s: float | None
    requests: int = 0
    errors: int = 0


@dataclass(frozen=True)
class RungFigures:
    """The figures of one rung of a run that the advice checks (from ``rung.runs.RungResult``)."""

    label: str
    model: str
    n: int
    accuracy: Interval
    macro_f1: Interval
    p50_ms: float
    p95_ms: float
    throughput_per_s: float
    params: int | None = None
    file_size_bytes: int | None = None
    tokens_in_per_request: float = 0.0
    tokens_out_per_request: float = 0.0
    load: tuple[LoadPoint, ...] = ()
    #: what `rung compare` computed (its machine profile or token prices), when it did
    cost_usd_per_1k: float | None = None
    cost_detail: str | None = None
    #: the best guessing baseline of the run (its name and rule, its accuracy), when recorded
    guessing: tuple[str, float] | None = None


def _interval(m: Metric) -> Interval:
    return Interval(m.value, m.ci95[0], m.ci95[1])


def _figures(r: RungResult, guessing: tuple[str, float] | None = None) -> RungFigures:
    q = classify_quality(r)
    return RungFigures(
        label=r.label,
        model=r.model,
        n=r.n,
        accuracy=_interval(q.accuracy),
        macro_f1=_interval(q.macro_f1),
        p50_ms=r.latency_ms.p50,
        p95_ms=r.latency_ms.p95,
        throughput_per_s=r.throughput_per_s,
        params=r.params,
        file_size_bytes=r.file_size_bytes,
        tokens_in_per_request=r.tokens.in_per_request,
        tokens_out_per_request=r.tokens.out_per_request,
        load=tuple(
            LoadPoint(
                concurrency=lv.concurrency,
                p95_ms=lv.latency_ms.p95,
                throughput_per_s=lv.throughput_per_s,
                requests=lv.requests,
                errors=lv.errors,
            )
            for lv in r.load or []
        ),
        cost_usd_per_1k=r.cost_usd_per_1k,
        cost_detail=r.cost.detail,
        guessing=guessing,
    )


def parse_results(results: RunResults) -> list[RungFigures]:
    """The figures the advice works on, for each rung of a run."""
    if not results.rungs:
        raise DataError("results.json holds no rungs; run `rung compare` first")
    if results.task.type != "classify":
        raise DataError(
            f"rung advise reads classify runs; this is a {results.task.type} run, whose figures "
            "are in its report.md and results.json"
        )
    best = max(results.baselines, key=lambda b: b.accuracy.value, default=None)
    guessing = (f"{best.name} ({best.rule})", best.accuracy.value) if best else None
    return [_figures(r, guessing) for r in results.rungs]


@dataclass(frozen=True)
class Check:
    constraint: str
    status: Status
    measured: float | str | None
    limit: float | str | None
    gap: float | None
    text: str


@dataclass(frozen=True)
class Assessment:
    rung: RungFigures
    card: ModelCard | None
    cost_per_1k: float | None
    cost_basis: str
    memory_bytes: int | None
    checks: tuple[Check, ...]

    @property
    def label(self) -> str:
        return self.rung.label

    @property
    def meets_all(self) -> bool:
        return all(c.status == "pass" for c in self.checks)

    @property
    def fails(self) -> list[Check]:
        return [c for c in self.checks if c.status == "fail"]

    @property
    def unknown(self) -> list[Check]:
        return [c for c in self.checks if c.status == "unknown"]

    @property
    def is_api(self) -> bool:
        return self.card is not None and self.card.kind == "api"

    @property
    def local(self) -> bool:
        return self.card is not None and self.card.on_prem is True and self.card.kind != "api"

    @property
    def size(self) -> int | None:
        if self.is_api:
            return None
        return self.rung.params or (self.card.params if self.card else None)

    def order(self) -> tuple[bool, int, bool, float, float]:
        """Smallest first, then cheapest, then fastest; unknown sizes and costs last."""
        return (
            self.size is None,
            self.size or 0,
            self.cost_per_1k is None,
            self.cost_per_1k or 0.0,
            self.rung.p95_ms,
        )


def metric_of(a: Assessment, metric: str) -> Interval:
    return a.rung.macro_f1 if metric == "macro_f1" else a.rung.accuracy


def metric_word(metric: str) -> str:
    return "macro-F1" if metric == "macro_f1" else "accuracy"
