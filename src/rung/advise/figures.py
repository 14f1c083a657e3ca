"""The figures the advice works on: the user's constraints, a rung's measured results, and
the outcome of checking one against the other.

A rung's quality is its task's headline metrics by name (classify: accuracy and macro-F1; a
text task: its scorer's, such as rougeL, chrf, f1, field_accuracy, token_f1, judge), each an
interval, and the metric that ranks rungs by default. A quality floor is a check named
``min_<metric>`` (``min_accuracy``, ``min_rougeL``), so every metric a run measured can have one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from rung.catalog.cards import ModelCard
from rung.errors import DataError, SpecError
from rung.runs.quality import Metric
from rung.runs.record import RungResult, RunResults

__all__ = [
    "CONSTRAINT_SHORT",
    "CONSTRAINT_WORDS",
    "Assessment",
    "Check",
    "Constraints",
    "Interval",
    "LoadPoint",
    "RungFigures",
    "Status",
    "constraint_short",
    "constraint_words",
    "floor_metric",
    "floor_name",
    "is_quality",
    "measured_metrics",
    "metric_of",
    "metric_word",
    "parse_results",
]
#: the quality checks that are not floors: a floor is any ``min_<metric>``
QUALITY_CHECKS = ("tied_with_best", "beats_guessing")
#: a word per constraint, for tables (floors: ``constraint_short``)
CONSTRAINT_SHORT = {
    "beats_guessing": "guessing",
    "max_p95_ms": "latency",
    "max_cost_per_1k": "cost",
    "device": "memory",
    "on_prem": "on-prem",
    "concurrency": "concurrency",
    "tied_with_best": "below best",
}
#: what a constraint is, in a sentence (floors: ``constraint_words``)
CONSTRAINT_WORDS = {
    "beats_guessing": "being better than guessing",
    "max_p95_ms": "the latency limit",
    "max_cost_per_1k": "the budget",
    "device": "the device's memory",
    "on_prem": "the on-premises rule",
    "concurrency": "the concurrency target",
    "tied_with_best": "being tied with the best",
}
#: how a table or a sentence names a metric whose name is not a word; others keep their own
METRIC_WORDS = {"macro_f1": "macro-F1"}

Status = Literal["pass", "fail", "unknown"]


def metric_word(metric: str) -> str:
    return METRIC_WORDS.get(metric, metric)


def floor_name(metric: str) -> str:
    """The check of a quality floor on ``metric``: min_accuracy, min_rougeL, ..."""
    return f"min_{metric}"


def floor_metric(constraint: str) -> str | None:
    """The metric a floor check is on; None for a check that is not a floor."""
    return constraint.removeprefix("min_") if constraint.startswith("min_") else None


def is_quality(constraint: str) -> bool:
    """Whether a check is about quality (a floor, the tie with the best, guessing): what a
    lower floor would concede."""
    return floor_metric(constraint) is not None or constraint in QUALITY_CHECKS


def constraint_short(constraint: str) -> str:
    metric = floor_metric(constraint)
    return metric_word(metric) if metric is not None else CONSTRAINT_SHORT[constraint]


def constraint_words(constraint: str) -> str:
    metric = floor_metric(constraint)
    if metric is not None:
        return f"the {metric_word(metric)} floor"
    return CONSTRAINT_WORDS[constraint]


@dataclass(frozen=True)
class Constraints:
    """What the user requires. Quality floors are fractions (0.85), not percentages:
    ``min_quality`` maps any metric the run measured to its floor; ``min_accuracy`` and
    ``min_macro_f1`` are classify's two, kept as fields because callers name them."""

    min_accuracy: float | None = None
    min_macro_f1: float | None = None
    max_p95_ms: float | None = None
    max_cost_per_1k: float | None = None  # USD per 1,000 requests
    device: str | None = None  # a device class name (rung.catalog.devices)
    on_prem: bool = False  # data must stay on premises: API rungs are excluded
    concurrency: int | None = None  # concurrent users the rung must serve
    hourly_price: float | None = None  # USD per hour of the machine running local rungs
    context: int = 4096  # tokens of context the memory check is made at
    #: metric name → floor (rougeL, chrf, f1, ...), in the order given
    min_quality: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # A plain dict, so that asdict (the advice's JSON) copies it like every other field.
        object.__setattr__(self, "min_quality", dict(self.min_quality))
        for metric, value in (("accuracy", self.min_accuracy), ("macro_f1", self.min_macro_f1)):
            given = self.min_quality.get(metric)
            if value is not None and given is not None and given != value:
                raise SpecError(
                    f"the {metric_word(metric)} floor is given twice ({value} and {given}); "
                    "give it once"
                )

    def floors(self) -> dict[str, float]:
        """Every quality floor, metric → floor: accuracy, macro-F1, then the others."""
        out = {
            m: v
            for m, v in (("accuracy", self.min_accuracy), ("macro_f1", self.min_macro_f1))
            if v is not None
        }
        out.update({m: v for m, v in self.min_quality.items() if m not in out})
        return out

    @property
    def has_floor(self) -> bool:
        return bool(self.floors())


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
    #: the task's headline metrics by name, in the scorer's order, as fractions
    quality: dict[str, Interval]
    #: the metric that ranks rungs when no floor names another
    primary: str
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
    #: (classify runs; a text task has no baselines, so no guessing check)
    guessing: tuple[str, float] | None = None

    def metric(self, name: str) -> Interval | None:
        return self.quality.get(name)


def _interval(m: Metric, scale: float) -> Interval:
    """A metric as a fraction: one the task reports on 0-100 (chrF 35.2) reads 0.352, so that
    floors, gaps in points and the wide-interval rule mean the same for every metric."""
    return Interval(m.value / scale, m.ci95[0] / scale, m.ci95[1] / scale)


def _figures(r: RungResult, guessing: tuple[str, float] | None = None) -> RungFigures:
    return RungFigures(
        label=r.label,
        model=r.model,
        n=r.n,
        quality={
            name: _interval(m, r.quality.scale(name)) for name, m in r.quality.metrics().items()
        },
        primary=r.quality.primary_metric(),
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
    """The figures the advice works on, for each rung of a run of any task type."""
    if not results.rungs:
        raise DataError("results.json holds no rungs; run `rung compare` first")
    best = max(results.baselines, key=lambda b: b.accuracy.value, default=None)
    guessing = (f"{best.name} ({best.rule})", best.accuracy.value) if best else None
    return [_figures(r, guessing) for r in results.rungs]


def measured_metrics(rungs: list[RungFigures]) -> list[str]:
    """The metrics any rung measured, the primary first, then in the scorer's order."""
    names: list[str] = []
    for r in rungs:
        for name in (r.primary, *r.quality):
            if name not in names:
                names.append(name)
    return names


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
    """A rung's interval on a metric every rung of the run measured (the advice's ``metric``)."""
    return a.rung.quality[metric]
