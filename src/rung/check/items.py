"""Per-item metric values: what the gate tests, read from a run's predictions.

Each task type registers one function from its prediction rows to its per-item metrics, by
name: ``binary`` metrics are right (1) or wrong (0) per item and are tested with the exact
McNemar test; ``continuous`` ones (a score per item, e.g. a ROUGE or a chrF of one summary or
translation) with the paired bootstrap. A task adds itself with one entry in ``ITEM_METRICS``
(higher values are better; a task whose metric is lower-better records its negation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rung.errors import DataError
from rung.runs import PredictionRow

__all__ = ["ITEM_METRICS", "ItemMetrics", "ItemValues", "MetricKind", "item_metrics"]

MetricKind = Literal["binary", "continuous"]


@dataclass(frozen=True)
class ItemValues:
    """One metric of one rung: its kind and its value on each item, by item id."""

    kind: MetricKind
    values: dict[str, float]


#: a task's per-item metrics of one rung's rows: metric name → values
ItemMetrics = Callable[[Sequence[PredictionRow]], dict[str, ItemValues]]


def classify_item_metrics(rows: Sequence[PredictionRow]) -> dict[str, ItemValues]:
    """Accuracy per item: the answer is the gold label (an invalid answer is wrong)."""
    right = {r.id: float(r.predicted is not None and r.predicted == r.gold) for r in rows}
    return {"accuracy": ItemValues("binary", right)}


ITEM_METRICS: dict[str, ItemMetrics] = {"classify": classify_item_metrics}


def item_metrics(task_type: str, rows: Sequence[PredictionRow]) -> dict[str, dict[str, ItemValues]]:
    """Each rung's per-item metrics (rung label → metric name → values) from a run's rows."""
    per_item = ITEM_METRICS.get(task_type)
    if per_item is None:
        raise DataError(
            f"rung check cannot test {task_type} runs item by item yet; "
            f"it tests {', '.join(sorted(ITEM_METRICS))}"
        )
    by_rung: dict[str, list[PredictionRow]] = {}
    for row in rows:
        by_rung.setdefault(row.rung, []).append(row)
    return {rung: per_item(rung_rows) for rung, rung_rows in by_rung.items()}
