"""Per-item metric values: what the gate tests, read from a run's predictions.

Each task type registers one function from its prediction rows (and the metrics its run
reported) to its per-item metrics, by name. ``binary`` metrics are right (1) or wrong (0) per
item and are tested with the exact McNemar test; ``continuous`` ones (a score per item: the
ROUGE-L of one summary, the chrF of one translation, a judge's grade) with the paired bootstrap
of the mean; ``ratio`` ones are a ratio of sums over the items (micro entity F1 is 2·TP over
predicted + gold entities), tested with the paired bootstrap of that ratio, so the gate tests
the very figure the run reported rather than a mean of per-sentence F1s.

A task type without an entry gets the generic rule: every metric the run reported with an
interval whose per-item value each prediction row holds (``PredictionRow.item_metrics``) is
continuous. Higher values are better; a task whose metric is lower-better records its negation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from rung.runs import PredictionRow

__all__ = [
    "ITEM_METRICS",
    "ItemMetrics",
    "ItemValues",
    "MetricKind",
    "item_metrics",
    "scored_item_metrics",
]

MetricKind = Literal["binary", "continuous", "ratio"]


@dataclass(frozen=True)
class ItemValues:
    """One metric of one rung: its kind and its value on each item, by item id. For a ratio
    metric ``values`` are the numerators and ``denominators`` the denominators."""

    kind: MetricKind
    values: dict[str, float]
    denominators: dict[str, float] | None = None

    def aggregate(self, ids: Sequence[str]) -> float:
        """The metric over ``ids``: the mean, or the ratio of sums (0 when nothing counts)."""
        if not ids:
            return 0.0
        top = sum(self.values[i] for i in ids)
        if self.denominators is None:
            return top / len(ids)
        bottom = sum(self.denominators[i] for i in ids)
        return top / bottom if bottom else 0.0


#: a task's per-item metrics of one rung's rows, given the metrics its run reported
ItemMetrics = Callable[[Sequence[PredictionRow], Sequence[str]], dict[str, ItemValues]]


def classify_item_metrics(
    rows: Sequence[PredictionRow], reported: Sequence[str] = ()
) -> dict[str, ItemValues]:
    """Accuracy per item: the answer is the gold label (an invalid answer is wrong)."""
    right = {r.id: float(r.predicted is not None and r.predicted == r.gold) for r in rows}
    return {"accuracy": ItemValues("binary", right)}


def scored_item_metrics(
    rows: Sequence[PredictionRow], reported: Sequence[str]
) -> dict[str, ItemValues]:
    """The reported metrics that every row scored on its own item, as continuous values."""
    out: dict[str, ItemValues] = {}
    for name in reported:
        if rows and all(r.item_metrics is not None and name in r.item_metrics for r in rows):
            out[name] = ItemValues("continuous", {r.id: (r.item_metrics or {})[name] for r in rows})
    return out


#: micro precision, recall and F1 as ratios of the per-sentence entity counts
_ENTITY_RATIOS: dict[str, Callable[[float, float, float], tuple[float, float]]] = {
    "precision": lambda tp, pred, gold: (tp, pred),
    "recall": lambda tp, pred, gold: (tp, gold),
    "f1": lambda tp, pred, gold: (2 * tp, pred + gold),
}


def extract_item_metrics(
    rows: Sequence[PredictionRow], reported: Sequence[str]
) -> dict[str, ItemValues]:
    """Entity precision, recall and F1 from each sentence's counts (true positives, predicted
    and gold entities), as the ratios the scorer reported; other metrics as continuous."""
    out = scored_item_metrics(rows, [m for m in reported if m not in _ENTITY_RATIOS])
    counted = rows and all(
        r.item_metrics is not None and {"tp", "predicted", "gold"} <= r.item_metrics.keys()
        for r in rows
    )
    if not counted:
        return scored_item_metrics(rows, reported)
    for name in (m for m in reported if m in _ENTITY_RATIOS):
        top: dict[str, float] = {}
        bottom: dict[str, float] = {}
        for r in rows:
            m = r.item_metrics or {}
            top[r.id], bottom[r.id] = _ENTITY_RATIOS[name](m["tp"], m["predicted"], m["gold"])
        out[name] = ItemValues("ratio", top, bottom)
    return {name: out[name] for name in reported if name in out}


ITEM_METRICS: dict[str, ItemMetrics] = {
    "classify": classify_item_metrics,
    "extract": extract_item_metrics,
}


def item_metrics(
    task_type: str,
    rows: Sequence[PredictionRow],
    reported: Mapping[str, Sequence[str]] | None = None,
) -> dict[str, dict[str, ItemValues]]:
    """Each rung's per-item metrics (rung label → metric name → values) from a run's rows;
    ``reported``: the metrics each rung's results reported (rung label → names)."""
    per_item = ITEM_METRICS.get(task_type, scored_item_metrics)
    by_rung: dict[str, list[PredictionRow]] = {}
    for row in rows:
        by_rung.setdefault(row.rung, []).append(row)
    reported = reported or {}
    return {
        rung: per_item(rung_rows, reported.get(rung, ())) for rung, rung_rows in by_rung.items()
    }
