from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rung.errors import DataError, SpecError
from rung.tasks.classify import ClassifyTask, build_requests, load_task_data

LABELS = ["negative", "neutral", "positive"]


def _task(path: Path, **kw: object) -> ClassifyTask:
    return ClassifyTask.model_validate({"data": {"path": str(path)}, "labels": LABELS, **kw})


def test_split_is_stratified_disjoint_and_seeded(fpb_path: Path) -> None:
    task = _task(fpb_path, train_size=300, test_size=200, seed=3)
    data = load_task_data(task, Path("."))
    assert len(data.test) == 200 and len(data.train) == 300
    assert not {e.text for e in data.train} & {e.text for e in data.test}
    counts = Counter(e.label for e in data.test)
    # AllAgree is 61% neutral, 25% positive, 13% negative
    assert counts["neutral"] == 123 and counts["positive"] == 50 and counts["negative"] == 27
    again = load_task_data(task, Path("."))
    assert [e.id for e in again.test] == [e.id for e in data.test]
    other = load_task_data(_task(fpb_path, train_size=300, test_size=200, seed=4), Path("."))
    assert [e.id for e in other.test] != [e.id for e in data.test]


def test_duplicates_are_dropped_before_splitting(fpb_path: Path) -> None:
    data = load_task_data(_task(fpb_path, test_size=0.5), Path("."))
    assert len(data.train) + len(data.test) == 2259  # 5 exact duplicates in the file


def test_separate_test_file_and_labels_from_data(shared_data: Path) -> None:
    task = ClassifyTask.model_validate(
        {
            "data": {"path": str(shared_data / "banking77" / "train.csv"), "label": "category"},
            "test_data": {"path": str(shared_data / "banking77" / "test.csv"), "label": "category"},
            "test_size": 154,
        }
    )
    data = load_task_data(task, Path("."))
    assert len(data.labels) == 77 and list(data.labels) == sorted(data.labels)
    assert len(data.test) == 154
    assert len({e.label for e in data.test}) == 77  # 2 per intent, stratified


def test_labels_the_spec_does_not_list(fpb_path: Path) -> None:
    task = ClassifyTask.model_validate(
        {"data": {"path": str(fpb_path)}, "labels": ["positive", "negative"]}
    )
    with pytest.raises(DataError, match=r"labels the spec does not list: 'neutral' \(1386 rows\)"):
        load_task_data(task, Path("."))


def test_prompt_lists_labels_descriptions_and_shots(fpb_path: Path) -> None:
    task = _task(
        fpb_path,
        train_size=60,
        test_size=5,
        prompt={"shots": 1, "label_descriptions": {"negative": "bad news"}},
    )
    data = load_task_data(task, Path("."))
    requests = build_requests(task, data)
    assert len(requests) == 5
    first = requests[0]
    assert first.messages[0].role == "system"
    assert "negative, neutral, positive" in first.messages[0].content
    assert "- negative: bad news" in first.messages[0].content
    # 1 shot per label = 3 user/assistant pairs, then the question
    roles = [m.role for m in first.messages]
    assert roles == ["system"] + ["user", "assistant"] * 3 + ["user"]
    assert {m.content for m in first.messages if m.role == "assistant"} == set(LABELS)
    assert first.messages[-1].content == data.test[0].text


def test_descriptions_of_unknown_labels_are_rejected(fpb_path: Path) -> None:
    task = _task(fpb_path, test_size=5, prompt={"label_descriptions": {"postive": "x"}})
    with pytest.raises(SpecError, match="postive"):
        build_requests(task, load_task_data(task, Path(".")))
