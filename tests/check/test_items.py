"""Per-item metrics: classify's right/wrong answers, and a task's continuous metric plugged in
the way a new task adds one, tested by the paired bootstrap instead of McNemar."""

from __future__ import annotations

import pytest

from rung.check import ITEM_METRICS, ItemValues, gate, item_metrics
from rung.check.items import classify_item_metrics
from rung.errors import DataError
from rung.runs import PredictionRow
from rung.runs.items import items_sha256_of_rows
from rung.runs.spec import CheckSpec
from tests.check.runs import run_data as _run


def test_classify_accuracy_per_item() -> None:
    run = _run({"a": 3})
    values = item_metrics("classify", run.predictions)["a"]["accuracy"]
    assert values.kind == "binary"
    assert [values.values[str(i)] for i in range(5)] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_an_unknown_task_is_refused() -> None:
    with pytest.raises(DataError, match="cannot test extract runs item by item"):
        item_metrics("extract", [])


def _with_confidence(rows: list[PredictionRow]) -> dict[str, ItemValues]:
    """A stand-in for a task with a continuous per-item score: the answer's confidence."""
    return {
        **classify_item_metrics(rows),
        "confidence": ItemValues("continuous", {r.id: r.confidence or 0.0 for r in rows}),
    }


def test_a_continuous_metric_goes_through_the_paired_bootstrap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(ITEM_METRICS, "classify", _with_confidence)
    base = _run({"a": 70})
    cand = _run({"a": 70})
    lower = [r.model_copy(update={"confidence": 0.3}) for r in cand.predictions]
    cand = type(cand)(results=cand.results, predictions=lower)
    report = gate(base, cand, CheckSpec(margins={"confidence": 0.05}), items_sha256_of_rows(lower))
    accuracy, confidence = report.quality
    assert accuracy.verdict == "ok"
    assert confidence.kind == "continuous" and confidence.margin == 0.05
    assert confidence.delta == pytest.approx(-0.2)
    # Every resampled mean is -0.2: the p-value is the bootstrap's floor.
    assert confidence.p_value == pytest.approx(1 / 2001)
    assert confidence.verdict == "regressed" and report.failed
