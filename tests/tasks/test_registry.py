"""The task registry: types to kinds, the task: section validated by its type's spec model,
and classify through its adapter on real data."""

from __future__ import annotations

from pathlib import Path

import pytest

from rung.errors import SpecError
from rung.tasks.classify import ClassifyTask
from rung.tasks.metrics import accuracy
from rung.tasks.registry import kind_of, parse_task, task_types


def test_builtin_types_are_listed() -> None:
    assert "classify" in task_types()


def test_unknown_type_suggests_a_known_one() -> None:
    with pytest.raises(SpecError, match=r"did you mean 'classify'"):
        parse_task({"type": "clasify", "data": {"path": "x.csv"}})


def test_task_section_without_type_is_classify() -> None:
    task = parse_task({"data": {"path": "x.csv"}})
    assert isinstance(task, ClassifyTask)


def test_a_wrong_field_names_the_field() -> None:
    with pytest.raises(SpecError, match="unknown field 'datta'"):
        parse_task({"type": "classify", "datta": {"path": "x.csv"}})


def test_classify_adapter_reads_asks_and_scores(fpb_path: Path) -> None:
    kind = kind_of("classify")
    spec = parse_task({"type": "classify", "data": {"path": str(fpb_path)}, "test_size": 12})
    train, test = kind.load_items(spec, Path("."))
    assert len(test) == 12 and train
    requests = kind.build_requests(spec, train, test)
    assert [r.text for r in requests] == [i.text for i in test]
    outputs = [i.reference if n % 3 else None for n, i in enumerate(test)]
    scores = kind.score(spec, outputs, test, resamples=200)
    labels = list(test[0].extra["labels"])
    assert scores.metrics["accuracy"].value == pytest.approx(
        accuracy([i.reference for i in test], outputs, labels)
    )
    assert scores.primary == "accuracy"
    assert scores.extras["invalid"] == 4
    assert [row["correct"] for row in scores.per_item] == [float(n % 3 != 0) for n in range(12)]
