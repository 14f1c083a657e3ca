"""The gate: a candidate run against a baseline run on the same items, as a pure function.

Quality: every rung × metric that both runs measured is tested item by item (``paired``), and
the p-values are Holm-corrected together. Budgets (latency p95, cost per 1,000 requests) are
limits, absolute or relative to the baseline, read from each run's record. A rung the baseline
measured and the candidate did not fails: a rung that stopped working is the worst regression.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from rung.check.items import ItemValues, item_metrics
from rung.check.paired import holm, mcnemar_exact, paired_bootstrap, paired_ratio_bootstrap
from rung.errors import SpecError, did_you_mean
from rung.runs import PredictionRow, RungResult, RunResults
from rung.runs.spec import CheckSpec

__all__ = [
    "BudgetCheck",
    "CheckReport",
    "MetricCheck",
    "RunData",
    "Verdict",
    "gate",
    "rungs_to_gate",
]

#: ok: no regression shown; regressed: a drop beyond the margin shown (Holm-adjusted);
#: unproven: no drop shown, but not shown to be within the margin either
Verdict = Literal["ok", "regressed", "unproven", "over budget", "missing"]


@dataclass(frozen=True)
class RunData:
    """What the gate reads of a run folder."""

    results: RunResults
    predictions: list[PredictionRow]


@dataclass(frozen=True)
class MetricCheck:
    rung: str
    metric: str
    kind: str
    n: int
    baseline: float
    candidate: float
    delta: float
    ci95: tuple[float, float]
    margin: float
    p_value: float
    p_holm: float
    verdict: Verdict
    failed: bool


@dataclass(frozen=True)
class BudgetCheck:
    rung: str
    metric: str
    baseline: float | None
    candidate: float | None
    limit: float
    rule: str
    verdict: Verdict
    failed: bool


@dataclass(frozen=True)
class CheckReport:
    items_sha256: str
    alpha: float
    quality: list[MetricCheck]
    budgets: list[BudgetCheck]
    #: rungs the baseline measured and the candidate did not
    missing: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return (
            bool(self.missing)
            or any(c.failed for c in self.quality)
            or any(b.failed for b in self.budgets)
        )


def rungs_to_gate(spec: CheckSpec, baseline: RunResults) -> list[str]:
    """The baseline's rungs that ``check.rungs`` names (all by default), in its order; a name
    that is none of them is refused."""
    base = [r.label for r in baseline.rungs]
    if spec.rungs is None:
        return base
    unknown = [r for r in spec.rungs if r not in base]
    if unknown:
        raise SpecError(
            f"check.rungs names {unknown[0]!r}, not a rung of the baseline"
            f"{did_you_mean(unknown[0], base)}; its rungs: {', '.join(base)}"
        )
    return [r for r in base if r in spec.rungs]


def _rungs_to_gate(
    spec: CheckSpec, baseline: RunResults, candidate: RunResults
) -> tuple[list[str], list[str], list[str]]:
    """(rungs in both runs, rungs missing from the candidate, notes), in the baseline's order."""
    base = [r.label for r in baseline.rungs]
    cand = {r.label for r in candidate.rungs}
    chosen = rungs_to_gate(spec, baseline)
    notes = [
        f"{label} is not in the baseline: not gated"
        for label in (r.label for r in candidate.rungs)
        if label not in base
    ]
    return [r for r in chosen if r in cand], [r for r in chosen if r not in cand], notes


def _test(
    rung: str, metric: str, base: ItemValues, cand: ItemValues, spec: CheckSpec, seed: int
) -> MetricCheck:
    """One rung × metric tested on the items both runs answered; its verdict is drawn after
    the Holm correction (``gate``)."""
    ids = sorted(base.values.keys() & cand.values.keys())
    margin = spec.margin(metric)
    b = [base.values[i] for i in ids]
    c = [cand.values[i] for i in ids]
    if base.kind == "ratio" and base.denominators is not None and cand.denominators is not None:
        boot = paired_ratio_bootstrap(
            (b, [base.denominators[i] for i in ids]),
            (c, [cand.denominators[i] for i in ids]),
            margin,
            spec.bootstrap,
            seed,
        )
    else:
        boot = paired_bootstrap(b, c, margin, spec.bootstrap, seed)
    p_value = boot.p_value
    if base.kind == "binary":
        wins = sum(1 for x, y in zip(b, c, strict=True) if y > x)
        losses = sum(1 for x, y in zip(b, c, strict=True) if x > y)
        p_value = mcnemar_exact(wins, losses, len(ids), margin)
    return MetricCheck(
        rung=rung,
        metric=metric,
        kind=base.kind,
        n=len(ids),
        baseline=base.aggregate(ids),
        candidate=cand.aggregate(ids),
        delta=boot.delta,
        ci95=boot.ci95,
        margin=margin,
        p_value=p_value,
        p_holm=p_value,
        verdict="ok",
        failed=False,
    )


def _budgets(spec: CheckSpec, rung: str, base: RungResult, cand: RungResult) -> list[BudgetCheck]:
    checks: list[BudgetCheck] = []

    def add(metric: str, b: float | None, c: float | None, limit: float, rule: str) -> None:
        over = c is not None and c > limit
        checks.append(
            BudgetCheck(rung, metric, b, c, limit, rule, "over budget" if over else "ok", over)
        )

    b_p95, c_p95 = base.latency_ms.p95, cand.latency_ms.p95
    if spec.latency_p95_ms is not None:
        add("latency_p95_ms", b_p95, c_p95, spec.latency_p95_ms, "absolute")
    if spec.latency_p95_ratio is not None:
        add(
            "latency_p95_ms",
            b_p95,
            c_p95,
            spec.latency_p95_ratio * b_p95,
            f"{spec.latency_p95_ratio:g}× baseline",
        )
    b_cost, c_cost = base.cost_usd_per_1k, cand.cost_usd_per_1k
    if spec.cost_per_1k_usd is not None:
        add("cost_usd_per_1k", b_cost, c_cost, spec.cost_per_1k_usd, "absolute")
    if spec.cost_ratio is not None and b_cost is not None:
        add(
            "cost_usd_per_1k",
            b_cost,
            c_cost,
            spec.cost_ratio * b_cost,
            f"{spec.cost_ratio:g}× baseline",
        )
    return checks


def _reported(results: RunResults) -> dict[str, list[str]]:
    """The metrics each rung's record reported with an interval: the ones worth gating."""
    return {r.label: list(r.quality.metrics()) for r in results.rungs}


def gate(baseline: RunData, candidate: RunData, spec: CheckSpec, items_sha256: str) -> CheckReport:
    """Test ``candidate`` against ``baseline`` (the same items, ``items_sha256``) by ``spec``."""
    both, missing, notes = _rungs_to_gate(spec, baseline.results, candidate.results)
    task = baseline.results.task.type
    base_items = item_metrics(task, baseline.predictions, _reported(baseline.results))
    cand_items = item_metrics(task, candidate.predictions, _reported(candidate.results))
    seed = baseline.results.task.seed
    tested: list[MetricCheck] = []
    budgets: list[BudgetCheck] = []
    base_by = {r.label: r for r in baseline.results.rungs}
    cand_by = {r.label: r for r in candidate.results.rungs}
    for rung in both:
        b_metrics, c_metrics = base_items.get(rung, {}), cand_items.get(rung, {})
        if not b_metrics:
            notes.append(f"{rung}: the baseline has no per-item metric: its quality is not tested")
        for metric, values in b_metrics.items():
            if metric not in c_metrics:
                notes.append(f"{rung}: the candidate has no per-item {metric}: not tested")
                continue
            tested.append(_test(rung, metric, values, c_metrics[metric], spec, seed))
        budgets.extend(_budgets(spec, rung, base_by[rung], cand_by[rung]))
    adjusted = holm([t.p_value for t in tested])
    quality = []
    for t, p_holm in zip(tested, adjusted, strict=True):
        regressed = p_holm < spec.alpha
        unproven = not regressed and t.ci95[0] < -t.margin
        verdict: Verdict = "regressed" if regressed else "unproven" if unproven else "ok"
        quality.append(
            replace(
                t,
                p_holm=p_holm,
                verdict=verdict,
                failed=regressed or (unproven and spec.require_non_inferiority),
            )
        )
    return CheckReport(
        items_sha256=items_sha256,
        alpha=spec.alpha,
        quality=quality,
        budgets=budgets,
        missing=missing,
        notes=notes,
    )
