"""Per-item metrics: classify's right/wrong answers, a text task's reported metrics read from
its rows' per-item scores, extract's micro F1 as a ratio of entity counts, and a task's
continuous metric plugged in the way a new task adds one, tested by the paired bootstrap
instead of McNemar."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from rung.check import ITEM_METRICS, ItemValues, gate, item_metrics
from rung.check.items import classify_item_metrics
from rung.runs import PredictionRow
from rung.runs.items import items_sha256_of_rows
from rung.runs.spec import CheckSpec
from tests.check.runs import run_data as _run
from tests.check.runs import text_run_data


def test_classify_accuracy_per_item() -> None:
    run = _run({"a": 3})
    values = item_metrics("classify", run.predictions)["a"]["accuracy"]
    assert values.kind == "binary"
    assert [values.values[str(i)] for i in range(5)] == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_a_text_task_gates_the_metrics_it_reported_per_item() -> None:
    run = text_run_data(
        "summarize", {"a": [{"rougeL": 0.4, "words": 12.0}, {"rougeL": 0.2, "words": 3.0}]},
        ["rougeL", "rouge1"],
    )  # fmt: skip
    (values,) = item_metrics("summarize", run.predictions, {"a": ["rougeL", "rouge1"]})["a"].items()
    # rouge1 has no per-item value and words no interval: neither is gated.
    assert values[0] == "rougeL" and values[1].kind == "continuous"
    assert values[1].values == {"0": 0.4, "1": 0.2}


def test_extract_gates_micro_f1_as_the_ratio_of_entity_counts() -> None:
    counts = [(2, 3, 2), (0, 1, 0), (1, 1, 4)]  # tp, predicted, gold per sentence
    rows = [{"tp": tp, "predicted": p, "gold": g, "f1": 0.0} for tp, p, g in counts]
    run = text_run_data("extract", {"a": rows}, ["precision", "recall", "f1"])
    got = item_metrics("extract", run.predictions, {"a": ["precision", "recall", "f1"]})["a"]
    ids = ["0", "1", "2"]
    assert {v.kind for v in got.values()} == {"ratio"}
    assert got["precision"].aggregate(ids) == pytest.approx(3 / 5)
    assert got["recall"].aggregate(ids) == pytest.approx(3 / 6)
    # micro F1, as seqeval reports it: 2·TP / (predicted + gold), not a mean of sentence F1s
    assert got["f1"].aggregate(ids) == pytest.approx(6 / 11)


def test_extract_regression_is_tested_on_micro_f1() -> None:
    good = [{"tp": 2.0, "predicted": 2.0, "gold": 2.0, "f1": 1.0}] * 60
    worse = [{"tp": 1.0, "predicted": 2.0, "gold": 2.0, "f1": 0.5}] * 60
    base = text_run_data("extract", {"a": good}, ["f1"])
    same = gate(base, base, CheckSpec(), items_sha256_of_rows(base.predictions))
    assert [c.verdict for c in same.quality] == ["ok"] and not same.failed
    cand = text_run_data("extract", {"a": worse}, ["f1"])
    report = gate(base, cand, CheckSpec(), items_sha256_of_rows(base.predictions))
    (f1,) = report.quality
    assert f1.kind == "ratio" and f1.delta == pytest.approx(-0.5)
    assert f1.baseline == 1.0 and f1.candidate == 0.5
    assert f1.verdict == "regressed" and report.failed


def test_a_rung_without_per_item_scores_is_noted() -> None:
    run = text_run_data("translate", {"a": [{}, {}]}, ["chrf"])
    report = gate(run, run, CheckSpec(), items_sha256_of_rows(run.predictions))
    assert report.quality == [] and "no per-item metric" in report.notes[0]


def _with_confidence(
    rows: Sequence[PredictionRow], reported: Sequence[str]
) -> dict[str, ItemValues]:
    """A stand-in for a task with a continuous per-item score: the answer's confidence."""
    return {
        **classify_item_metrics(rows, reported),
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
