"""RunFolder: a run folder read into typed objects, with one line for what is wrong, and
written in one step."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rung.errors import DataError, RunError
from rung.runs import RunFolder, parse_spec
from rung.runs.spec import spec_as_run
from tests.runs.records import prediction, run_results, rung_result

SPEC = {
    "task": {"type": "classify", "data": {"path": "data/reviews.csv"}},
    "models": [
        {"id": "openai:qwen2.5:7b", "label": "local", "options": {"base_url": "http://localhost:8080/v1"}},
        "encoder:minilm-l6",
    ],
}  # fmt: skip


def _write(folder: Path) -> RunFolder:
    run = RunFolder(folder)
    results = run_results([rung_result("local"), rung_result("encoder:minilm-l6")])
    rows = [prediction("local", 1), prediction("encoder:minilm-l6", 1, predicted="positive")]
    run.write(results, rows, spec_as_run(parse_spec(SPEC), Path("/specs")), {"report.md": "# hi\n"})
    return run


def test_a_written_run_reads_back(tmp_path: Path) -> None:
    run = _write(tmp_path / "run")
    assert sorted(p.name for p in run.path.iterdir()) == [
        "predictions.jsonl",
        "report.md",
        "results.json",
        "spec.yaml",
    ]
    assert [r.label for r in run.results().rungs] == ["local", "encoder:minilm-l6"]
    assert [p.predicted for p in run.predictions()] == ["neutral", "positive"]
    spec = run.spec()
    assert spec is not None and spec.task.data.path == Path("/specs/data/reviews.csv")
    assert spec.base_urls() == {"local": "http://localhost:8080/v1"}
    # a results file given by its path reads the same, with the spec beside it
    at_file = RunFolder.at(run.results_path)
    assert at_file.results() == run.results() and at_file.spec() == spec


def test_writing_again_replaces_a_run_but_nothing_else(tmp_path: Path) -> None:
    run = _write(tmp_path / "run")
    (run.path / "stale.txt").write_text("from before", encoding="utf-8")
    _write(tmp_path / "run")
    assert not (run.path / "stale.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(RunError, match="not empty and holds no rung run"):
        _write(other)
    (tmp_path / "file").write_text("x", encoding="utf-8")
    with pytest.raises(RunError, match="is a file"):
        _write(tmp_path / "file")


def test_what_is_wrong_is_said_in_one_line(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="run folder not found"):
        RunFolder(tmp_path / "missing").results()
    with pytest.raises(DataError, match=r"holds no predictions\.jsonl"):
        RunFolder(tmp_path).predictions()
    run = _write(tmp_path / "run")
    run.results_path.write_text("{not json", encoding="utf-8")
    with pytest.raises(DataError, match="is not valid JSON"):
        run.results()
    run.results_path.write_text('{"rungs": []}', encoding="utf-8")
    with pytest.raises(DataError, match=r"not a results file this rung reads \(missing field"):
        run.results()
    run.predictions_path.write_text('{"rung": "local"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"predictions\.jsonl, line 1: .*missing field 'model'"):
        run.predictions()
    run.predictions_path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: not a prediction line"):
        run.predictions()


def test_a_missing_or_broken_spec_is_no_spec(tmp_path: Path) -> None:
    run = _write(tmp_path / "run")
    run.spec_path.write_text(yaml.safe_dump({"task": "?"}), encoding="utf-8")
    assert run.spec() is None
    run.spec_path.unlink()
    assert run.spec() is None
