"""Replaying a run through a cascade: what it would have answered, at what cost.

Every example of the run goes to the policy's first rung; it keeps that rung's recorded answer
when the rung's recorded confidence meets its threshold (``rung.route.policy.decide``, the
function the server uses), and climbs otherwise. A request pays every rung it reached. The
intervals are percentile-bootstrap 95% intervals over the examples, with the same seed and
resamples as ``rung compare``, so a one-rung cascade reproduces the run's own accuracy interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rung.route.policy import Policy, decide
from rung.route.table import CostBasis, RunTable, rung_costs
from rung.tasks.metrics import Estimate, bootstrap_ci

__all__ = ["Evaluation", "RungShare", "bootstrap_mean", "replay", "simulate"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True)
class RungShare:
    rung: str
    threshold: float | None
    reached: Estimate
    answered: Estimate
    #: accuracy (a text task's metric) on the examples this rung kept; None when it kept none
    accuracy_answered: float | None
    cost_per_request: float

    def to_json(self) -> dict[str, Any]:
        return {
            "rung": self.rung,
            "threshold": self.threshold,
            "reached": _est(self.reached),
            "answered": _est(self.answered),
            "accuracy_answered": self.accuracy_answered,
            "cost_per_request": self.cost_per_request,
        }


@dataclass(frozen=True)
class Evaluation:
    """A cascade replayed over a run, against a reference rung that answers everything."""

    policy: Policy
    n: int
    accuracy: Estimate
    reference: str
    reference_accuracy: Estimate
    #: cascade accuracy minus the reference's, paired over the same examples
    difference: Estimate
    cost_basis: CostBasis
    cost_per_request: Estimate
    reference_cost_per_request: float
    shares: tuple[RungShare, ...]
    notes: tuple[str, ...] = ()
    #: what ``accuracy`` measures: accuracy, or a text task's primary metric
    metric: str = "accuracy"

    @property
    def saving(self) -> float | None:
        """Share of the reference's cost the cascade saves (negative: it costs more)."""
        ref = self.reference_cost_per_request
        if ref <= 0:
            return None
        saving = 1 - self.cost_per_request.value / ref
        return 0.0 if abs(saving) < 1e-9 else saving  # float noise of the per-example sums

    def share_of(self, rung: str) -> float:
        return next((s.answered.value for s in self.shares if s.rung == rung), 0.0)

    def to_json(self) -> dict[str, Any]:
        unit = 1000 if self.cost_basis == "usd" else 1
        return {
            "policy": self.policy.to_json()["rungs"],
            "n": self.n,
            "metric": self.metric,
            "accuracy": _est(self.accuracy),
            "reference": self.reference,
            "reference_accuracy": _est(self.reference_accuracy),
            "difference": _est(self.difference),
            "cost_basis": self.cost_basis,
            "cost_unit": "usd_per_1k" if self.cost_basis == "usd" else "ms_per_request",
            "cost": _est(self.cost_per_request, unit),
            "reference_cost": self.reference_cost_per_request * unit,
            "saving": self.saving,
            "shares": [s.to_json() for s in self.shares],
            "notes": list(self.notes),
        }


def _est(e: Estimate, scale: float = 1.0) -> dict[str, Any]:
    return {"value": e.value * scale, "ci95": [e.ci95[0] * scale, e.ci95[1] * scale]}


def bootstrap_mean(values: FloatArray, idx: IntArray) -> Estimate:
    """Mean of ``values`` and its percentile-bootstrap 95% interval over the resample rows of
    ``idx`` (one row of example indices per resample)."""
    if len(values) == 0:
        return Estimate(0.0, (0.0, 0.0))
    stats = values[idx].mean(axis=1)
    low, high = np.percentile(stats, [2.5, 97.5])
    return Estimate(float(values.mean()), (float(low), float(high)))


def replay(table: RunTable, policy: Policy) -> tuple[IntArray, list[str | None]]:
    """Which rung of ``policy`` answers each example, and the answer it gives."""
    columns = [table.rung(name) for name in policy.rungs]
    answered_by = np.zeros(table.n, dtype=np.int64)
    answers: list[str | None] = []
    for i in range(table.n):
        for k, (col, threshold) in enumerate(zip(columns, policy.thresholds, strict=True)):
            conf = float(col.confidence[i])
            if decide(conf, threshold) == "answer":
                answered_by[i] = k
                answers.append(col.predicted[i])
                break
    return answered_by, answers


def simulate(
    table: RunTable,
    policy: Policy,
    *,
    reference: str | None = None,
    cost_rungs: Sequence[str] = (),
    resamples: int = 1000,
    seed: int = 0,
) -> Evaluation:
    """Replay ``table`` through ``policy``; compare with ``reference`` (default: the policy's
    last rung) as if it had answered every request. Costs are in USD when every rung involved
    (the policy's, the reference, and ``cost_rungs``) has a cost in the run, else in relative
    latency."""
    ref_name = table.rung(reference).label if reference else table.rung(policy.rungs[-1]).label
    columns = [table.rung(name) for name in policy.rungs]
    names = [c.label for c in columns]
    if len(set(names)) != len(names):
        raise ValueError(f"a rung appears twice in the cascade: {names}")
    ref_col = table.rung(ref_name)
    everyone = {c.label: c for c in [*columns, ref_col, *(table.rung(r) for r in cost_rungs)]}
    costs, basis, note = rung_costs(list(everyone.values()))
    cost_of = dict(zip(everyone, costs.tolist(), strict=True))
    rung_cost = np.array([cost_of[name] for name in names], dtype=np.float64)
    ref_cost = float(cost_of[ref_col.label])

    answered_by, answers = replay(table, policy)
    gold = list(table.gold)
    labels = list(table.labels)
    k = np.arange(len(columns))
    reached = answered_by[:, None] >= k[None, :]  # (n, rungs)
    answered = answered_by[:, None] == k[None, :]
    per_example_cost = (reached * rung_cost[None, :]).sum(axis=1).astype(np.float64)
    quality = np.stack([col.correct(gold) for col in columns], axis=1)
    correct = quality[np.arange(table.n), answered_by] if table.n else np.zeros(0)
    ref_correct = ref_col.correct(gold)

    rng = np.random.default_rng(seed)
    idx = rng.integers(0, max(table.n, 1), size=(resamples, table.n))
    shares = []
    for j, col in enumerate(columns):
        kept = answered[:, j]
        shares.append(
            RungShare(
                rung=col.label,
                threshold=policy.thresholds[j],
                reached=bootstrap_mean(reached[:, j].astype(np.float64), idx),
                answered=bootstrap_mean(kept.astype(np.float64), idx),
                accuracy_answered=float(correct[kept].mean()) if kept.any() else None,
                cost_per_request=float(rung_cost[j]),
            )
        )
    diff = correct - ref_correct
    notes = [note] if note else []
    if table.metric == "accuracy":
        # the run's own resampling, so a one-rung cascade shows the run's own interval
        accuracy = bootstrap_ci(gold, answers, labels, "accuracy", resamples=resamples, seed=seed)
        ref_accuracy = bootstrap_ci(
            gold, list(ref_col.predicted), labels, "accuracy", resamples=resamples, seed=seed
        )
    else:
        accuracy, ref_accuracy = bootstrap_mean(correct, idx), bootstrap_mean(ref_correct, idx)
    return Evaluation(
        policy=policy,
        n=table.n,
        accuracy=accuracy,
        reference=ref_col.label,
        reference_accuracy=ref_accuracy,
        difference=bootstrap_mean(diff, idx),
        cost_basis=basis,
        cost_per_request=bootstrap_mean(per_example_cost, idx),
        reference_cost_per_request=ref_cost,
        shares=tuple(shares),
        notes=tuple(notes),
        metric=table.metric,
    )
