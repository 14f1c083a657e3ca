"""Picking a cascade's thresholds from a run: the target quality at the least cost.

The rungs are taken from small to large (by cost per request unless the caller gives an order).
The reference, the "top rung", is the most accurate of them. A cascade is any sub-ladder of
them in that order (one to four rungs: a rung that never keeps an answer only adds cost, so
leaving it out is one of the choices), with a threshold for every rung but the last. A request
climbs while the rung's confidence is below its threshold and pays every rung it reaches, so

    expected cost per request = Σ over rungs (share of requests reaching it × its cost).

Candidate thresholds are the midpoints between a rung's distinct recorded confidences (plus
0, "keep every answer"). The last threshold of a sub-ladder is swept exactly with cumulative
sums; earlier ones run over all candidates or, past a budget, over a grid of quantiles. Every
evaluated cascade lands on one cost-quality plane, whose upper-left frontier is the curve
``route calibrate`` plots; the chosen cascade is the cheapest point of it whose accuracy is at
least ``target`` × the top rung's.

On a text task (an answer task's grounded answers, say) "accuracy" is the run's primary
metric, averaged over the answers the cascade keeps: each answer counts its own score (token
F1, say) instead of right or wrong, and the same search applies.

Thresholds chosen on a set of examples fit that set: the accuracy they reach there is
optimistic. ``holdout`` keeps a share of the examples aside and reports the chosen cascade on
them as well.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from rung.errors import DataError, SpecError
from rung.route.policy import Policy
from rung.route.simulate import Evaluation, simulate
from rung.route.table import CostBasis, RunTable, rung_costs

__all__ = ["Calibration", "CurvePoint", "calibrate", "order_rungs"]

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

#: longest sub-ladder tried: three rungs that may pass a request on, and the last
MAX_RUNGS = 4
#: threshold combinations of the earlier rungs tried per sub-ladder (each with an exact sweep
#: of its last threshold); past it, the earlier rungs' candidates are thinned to quantiles
SWEEP_BUDGET = 1500
#: slack for float round-off when comparing an accuracy with the target
EPS = 1e-9


@dataclass(frozen=True)
class CurvePoint:
    policy: Policy
    cost_per_request: float
    accuracy: float
    #: share of requests each rung of the policy keeps
    shares: tuple[float, ...]

    def to_json(self, unit: float) -> dict[str, Any]:
        return {
            "policy": self.policy.to_json()["rungs"],
            "cost": self.cost_per_request * unit,
            "accuracy": self.accuracy,
            "shares": dict(zip(self.policy.rungs, self.shares, strict=True)),
        }


@dataclass(frozen=True)
class Calibration:
    target: float
    #: the rungs considered, small to large
    order: tuple[str, ...]
    top: str
    top_accuracy: float
    required_accuracy: float
    #: the chosen cascade replayed over the calibration examples, against the top rung
    chosen: Evaluation
    #: the chosen cascade on the held-out examples (None without a hold-out)
    holdout: Evaluation | None
    #: the cost-quality frontier, by increasing cost
    curve: tuple[CurvePoint, ...]
    #: each rung alone
    singles: tuple[CurvePoint, ...]
    cost_basis: CostBasis
    evaluated: int
    notes: tuple[str, ...]
    #: what the accuracy figures measure: accuracy, or a text task's primary metric
    metric: str = "accuracy"

    @property
    def policy(self) -> Policy:
        return self.chosen.policy

    @property
    def cost_unit(self) -> float:
        """Multiplier from cost per request to the shown figure (USD per 1,000 requests)."""
        return 1000.0 if self.cost_basis == "usd" else 1.0

    def share_of_smallest(self) -> float:
        return self.chosen.share_of(self.order[0])

    def to_json(self) -> dict[str, Any]:
        unit = self.cost_unit
        return {
            "target": self.target,
            "metric": self.metric,
            "order": list(self.order),
            "top": self.top,
            "top_accuracy": self.top_accuracy,
            "required_accuracy": self.required_accuracy,
            "chosen": self.chosen.to_json(),
            "holdout": self.holdout.to_json() if self.holdout else None,
            "share_of_smallest": self.share_of_smallest(),
            "cost_basis": self.cost_basis,
            "cost_unit": "usd_per_1k" if self.cost_basis == "usd" else "ms_per_request",
            "curve": [p.to_json(unit) for p in self.curve],
            "singles": [p.to_json(unit) for p in self.singles],
            "evaluated": self.evaluated,
            "notes": list(self.notes),
        }


def order_rungs(table: RunTable, rungs: Sequence[str] | None = None) -> list[str]:
    """The rungs small to large: as given, or by cost per request (the run's order on ties)."""
    if rungs:
        names = [table.rung(r).label for r in rungs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise SpecError(f"rungs listed twice: {', '.join(dupes)}; list each rung once")
        return names
    costs, _, _ = rung_costs(table.rungs)
    order = sorted(range(len(table.rungs)), key=lambda i: (costs[i], i))
    return [table.rungs[i].label for i in order]


# -- the search ---------------------------------------------------------------------------------


def _candidates(conf: FloatArray) -> FloatArray:
    """0 (keep every answer whose confidence is known) and the midpoints between consecutive
    distinct confidences, ascending."""
    distinct = np.unique(conf[np.isfinite(conf)])
    if len(distinct) == 0:
        return np.zeros(0)
    mids = (distinct[:-1] + distinct[1:]) / 2
    # Adjacent floats have no midpoint strictly between them: the upper value splits them.
    mids = np.where(mids > distinct[:-1], mids, distinct[1:])
    return np.unique(np.concatenate([[0.0], mids]))


def _thin(conf: FloatArray, cands: FloatArray, size: int) -> FloatArray:
    """At most ``size`` candidates, spread evenly over the examples (quantiles)."""
    if len(cands) <= size:
        return cands
    finite = np.sort(conf[np.isfinite(conf)])
    climbing = np.searchsorted(finite, cands, side="left") / max(len(finite), 1)
    pick = np.searchsorted(climbing, np.linspace(0, 1, size), side="left")
    return cands[np.unique(np.clip(pick, 0, len(cands) - 1))]


@dataclass
class _Front:
    """The upper-left frontier of (cost, correct) points seen so far, with their policies.
    ``correct`` is the summed quality of the answers: a count of right labels, or a sum of a
    text metric's per-answer values."""

    cost: FloatArray
    correct: FloatArray
    policies: list[Policy]
    evaluated: int = 0

    @classmethod
    def empty(cls) -> _Front:
        return cls(np.zeros(0), np.zeros(0), [])

    def merge(self, cost: FloatArray, correct: FloatArray, make: Callable[[int], Policy]) -> None:
        self.evaluated += len(cost)
        all_cost = np.concatenate([self.cost, cost])
        all_correct = np.concatenate([self.correct, correct])
        n_old = len(self.cost)
        # cheapest first, the most correct first among equal costs; lexsort is stable, so an
        # earlier (simpler) policy wins a tie. Costs equal but for float round-off (the same
        # requests paying the same rungs, summed in another order) count as equal.
        scale = float(all_cost.max()) if len(all_cost) and all_cost.max() > 0 else 1.0
        # sums of a text metric's values differ by round-off in another order, too
        rounded = np.round(all_correct, 9)
        order = np.lexsort((-rounded, np.round(all_cost / scale, 12)))
        ranked = rounded[order]
        best_before = np.concatenate([[-1], np.maximum.accumulate(ranked)[:-1]])
        kept = order[ranked > best_before]
        self.policies = [self.policies[i] if i < n_old else make(int(i) - n_old) for i in kept]
        self.cost, self.correct = all_cost[kept], all_correct[kept]


def _sweep(
    front: _Front,
    prefix: tuple[tuple[int, float], ...],
    a: int,
    b: int,
    conf: FloatArray,
    correct: FloatArray,
    costs: FloatArray,
    names: Sequence[str],
) -> None:
    """Every threshold of rung ``a`` (then ``b`` takes the rest) after the fixed ``prefix``
    of (rung, threshold)."""
    n = conf.shape[0]
    reach = np.ones(n, dtype=bool)
    fixed_correct = 0.0
    fixed_cost = 0.0
    for k, t in prefix:
        fixed_cost += costs[k] * int(reach.sum())
        keep = reach & (conf[:, k] >= t)
        fixed_correct += float(correct[keep, k].sum())
        reach &= ~keep
    rows = np.flatnonzero(reach)
    r = len(rows)
    if r == 0:
        return
    c = conf[rows, a]
    finite = np.isfinite(c)
    order = np.argsort(np.where(finite, -c, np.inf), kind="stable")
    sc = c[order]
    n_finite = int(finite.sum())
    if n_finite == 0:
        return
    ca = np.cumsum(correct[rows, a][order])
    cb = np.cumsum(correct[rows, b][order])
    # j = how many of the reaching requests rung a keeps (its j most confident), at a split
    # between distinct confidences
    j = np.arange(1, n_finite + 1)
    split = np.ones(n_finite, dtype=bool)
    split[:-1] = sc[1:n_finite] < sc[: n_finite - 1]
    # keeping every reaching request at rung a leaves rung b idle: that is the shorter
    # ladder without b, tried on its own
    split &= j < r
    j = j[split]
    if len(j) == 0:
        return
    total = fixed_correct + ca[j - 1] + (cb[-1] - cb[j - 1])
    cost = (fixed_cost + costs[a] * r + costs[b] * (r - j)) / n
    upper = sc[j - 1]  # the least confident answer rung a keeps
    lower = sc[np.minimum(j, n_finite - 1)]  # the most confident one it passes on
    mid = (upper + lower) / 2
    # Adjacent floats have no midpoint strictly between them: the kept value itself splits them.
    thresholds = np.where(mid > lower, mid, upper)
    thresholds = np.where(j < n_finite, thresholds, min(0.0, float(sc[n_finite - 1])))
    lead = tuple(names[k] for k, _ in prefix)
    lead_t = tuple(float(t) for _, t in prefix)

    def make(i: int) -> Policy:
        return Policy((*lead, names[a], names[b]), (*lead_t, float(thresholds[i]), None))

    front.merge(cost.astype(np.float64), total.astype(np.float64), make)


def _always(policy: Policy) -> Callable[[int], Policy]:
    return lambda _: policy


def _answered_by(policy: Policy, conf: FloatArray, index: dict[str, int]) -> IntArray:
    n = conf.shape[0]
    who = np.full(n, len(policy.rungs) - 1, dtype=np.int64)
    open_ = np.ones(n, dtype=bool)
    for k, (name, t) in enumerate(zip(policy.rungs, policy.thresholds, strict=True)):
        if t is None:
            break
        keep = open_ & (conf[:, index[name]] >= t)
        who[keep] = k
        open_ &= ~keep
    return who


def _point(
    policy: Policy, cost: float, correct: float, conf: FloatArray, index: dict[str, int], n: int
) -> CurvePoint:
    who = _answered_by(policy, conf, index)
    shares = tuple(float((who == k).mean()) if n else 0.0 for k in range(len(policy.rungs)))
    return CurvePoint(policy, cost, correct / n if n else 0.0, shares)


def _split(n: int, holdout: float, seed: int) -> tuple[list[int], list[int]]:
    rng = np.random.default_rng(seed)
    rows = rng.permutation(n)
    held = round(n * holdout)
    return sorted(int(i) for i in rows[held:]), sorted(int(i) for i in rows[:held])


def calibrate(
    table: RunTable,
    target: float,
    rungs: Sequence[str] | None = None,
    *,
    holdout: float = 0.0,
    resamples: int = 1000,
    seed: int = 0,
) -> Calibration:
    """The cheapest cascade of ``rungs`` (default: every rung of the run, by cost) whose
    accuracy is at least ``target`` × the most accurate rung's, on ``table``."""
    if not (isinstance(target, int | float) and 0 < target <= 1) or math.isnan(target):
        raise SpecError(
            f"target {target} is outside (0, 1]: it is the share of the top rung's accuracy "
            "to keep, e.g. 0.99"
        )
    if not 0 <= holdout < 1:
        raise SpecError(f"holdout {holdout} is outside [0, 1): the share of examples kept aside")
    if table.n == 0:
        raise DataError(f"{table.source} has no examples to calibrate on")
    names = order_rungs(table, rungs)
    fit_rows, held_rows = _split(table.n, holdout, seed) if holdout else (list(range(table.n)), [])
    if holdout and (len(fit_rows) < 10 or len(held_rows) < 10):
        raise SpecError(
            f"a hold-out of {holdout:g} of {table.n} examples leaves too few on one side; "
            "use a larger run or a different --holdout"
        )
    fit = table.subset(fit_rows) if holdout else table
    columns = [fit.rung(n) for n in names]
    costs, basis, note = rung_costs(columns)
    n = fit.n
    conf = np.stack([c.confidence for c in columns], axis=1)
    correct = np.stack([c.correct(fit.gold) for c in columns], axis=1)
    counts = correct.sum(axis=0)
    # the most accurate rung; on a tie, the larger (later) one
    top = max(range(len(names)), key=lambda k: (round(float(counts[k]), 9), k))
    required = target * float(counts[top])

    front = _Front.empty()
    singles = []
    for k in range(len(names)):
        single = CurvePoint(
            Policy((names[k],), (None,)), float(costs[k]), float(counts[k]) / n, (1.0,)
        )
        front.merge(
            np.array([costs[k]]),
            np.array([float(counts[k])]),
            _always(single.policy),
        )
        singles.append(single)
    cands = [_candidates(conf[:, k]) for k in range(len(names))]
    for size in range(2, min(MAX_RUNGS, len(names)) + 1):
        for ladder in itertools.combinations(range(len(names)), size):
            *lead, a, b = ladder
            per_rung = max(1, int(SWEEP_BUDGET ** (1 / len(lead)))) if lead else 1
            grids = [_thin(conf[:, k], cands[k], per_rung) for k in lead]
            for ts in itertools.product(*grids):
                prefix = tuple(zip(lead, (float(t) for t in ts), strict=True))
                _sweep(front, prefix, a, b, conf, correct, costs, names)

    index = {name: k for k, name in enumerate(names)}
    curve = tuple(
        _point(p, float(c), float(k), conf, index, n)
        for p, c, k in zip(front.policies, front.cost, front.correct, strict=True)
    )
    chosen = next(p for p in curve if p.accuracy * n + EPS >= required)
    evaluation = simulate(
        fit, chosen.policy, reference=names[top], cost_rungs=names, resamples=resamples, seed=seed
    )
    held = (
        simulate(
            table.subset(held_rows),
            chosen.policy,
            reference=names[top],
            cost_rungs=names,
            resamples=resamples,
            seed=seed,
        )
        if holdout
        else None
    )
    notes = [note] if note else []
    if len(names) > 1 and not np.isfinite(conf[:, :-1]).any():
        notes.append(
            "no rung but the last recorded a confidence for its answers (a text task's rungs "
            "record none; an answer task's grounded answers and classifiers do): no cascade "
            "can route between them, so only each rung alone was weighed"
        )
    if chosen.policy.rungs == (names[top],) and top != 0:
        notes.append(
            f"no cascade reaches {target:g} × {names[top]}'s {table.metric} more cheaply than "
            f"{names[top]} alone"
        )
    if top == 0:
        notes.append(
            f"the cheapest rung, {names[0]}, is also the most accurate: "
            "no cascade can beat it alone"
        )
    if not holdout:
        notes.append(
            f"the thresholds were chosen on these same examples, so the {table.metric} shown is "
            "optimistic; use --holdout or simulate on another run to check it"
        )
    return Calibration(
        target=float(target),
        order=tuple(names),
        top=names[top],
        top_accuracy=float(counts[top]) / n,
        required_accuracy=required / n,
        chosen=evaluation,
        holdout=held,
        curve=curve,
        singles=tuple(singles),
        cost_basis=basis,
        evaluated=front.evaluated,
        notes=tuple(notes),
        metric=table.metric,
    )
