"""The run record as a file format: its schema is published, it reads back what it writes,
and it refuses what is not a record of this version, naming the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from rung.runs import (
    QUALITY_MODELS,
    RECORD_VERSION,
    ClassifyQuality,
    FailedRung,
    PredictionRow,
    RunResults,
)
from tests.runs.records import load_level, prediction, run_results, rung_result

REPO = Path(__file__).resolve().parents[2]


def _published(name: str) -> object:
    return json.loads((REPO / "schemas" / name).read_text(encoding="utf-8"))


def test_published_schemas_are_current() -> None:
    hint = "run `make schema` and commit the result"
    assert _published("run-results.schema.json") == RunResults.model_json_schema(), hint
    assert _published("prediction-row.schema.json") == PredictionRow.model_json_schema(), hint


def _sample() -> RunResults:
    return run_results(
        [
            rung_result("small", 0.8, (0.7, 0.9), load=[load_level(4, p95=80.0, throughput=12.5)]),
            rung_result("large", 0.9, (0.85, 0.95), tokens_in=120.0, cost_usd_per_1k=0.02),
        ]
    )


def test_a_record_reads_back_as_the_same_text() -> None:
    record = _sample()
    text = record.to_text()
    again = RunResults.model_validate_json(text)
    assert again == record and again.to_text() == text
    data = json.loads(text)
    assert list(data)[:2] == ["record_version", "rung_version"]
    assert data["record_version"] == RECORD_VERSION
    # "in" is a keyword in Python, not in the file
    assert list(data["rungs"][0]["tokens"]) == ["in", "out", "in_per_request", "out_per_request"]
    assert "failed" not in data  # written only when a rung failed
    row = prediction("small", 7, "neutral", "positive", 0.6)
    assert PredictionRow.model_validate_json(row.to_line()) == row


def test_failed_rungs_are_written_when_there_are_some() -> None:
    record = _sample()
    record.failed = [
        FailedRung(label="x", model="llamacpp:x", error="died", signal="SIGSEGV", stage="loading")
    ]
    data = json.loads(record.to_text())
    assert data["failed"][0]["signal"] == "SIGSEGV"
    assert RunResults.model_validate(data).failed == record.failed


def test_a_file_written_before_the_version_field_is_version_1() -> None:
    data = _sample().to_json()
    del data["record_version"]
    assert RunResults.model_validate(data).record_version == 1


def test_what_is_not_a_record_of_this_version_is_refused_by_field() -> None:
    data = _sample().to_json()
    with pytest.raises(ValidationError, match="record version 2 is not one this rung reads"):
        RunResults.model_validate({**data, "record_version": 2})
    typo = json.loads(json.dumps(data))
    typo["rungs"][0]["latency_ms"]["p59"] = 1.0
    with pytest.raises(ValidationError, match=r"rungs\.0\.latency_ms\.p59"):
        RunResults.model_validate(typo)
    missing = json.loads(json.dumps(data))
    del missing["rungs"][1]["quality"]["macro_f1"]
    with pytest.raises(ValidationError, match=r"rungs\.1\.quality\..*macro_f1"):
        RunResults.model_validate(missing)
    other_task = json.loads(json.dumps(data))
    other_task["task"]["type"] = "summarize"
    with pytest.raises(ValidationError, match=r"not the quality of a summarize task"):
        RunResults.model_validate(other_task)


def test_every_task_type_has_a_quality_model_with_named_metrics() -> None:
    assert QUALITY_MODELS["classify"] is ClassifyQuality
    quality = _sample().rungs[1].quality
    assert list(quality.metrics()) == ["accuracy", "macro_f1"]
    assert quality.metrics()[quality.primary].value == 0.9


def test_rung_schema_prints_each_published_schema() -> None:
    from typer.testing import CliRunner

    from rung.cli.main import app

    runner = CliRunner()
    for what, name in (
        ([], "compare-spec"),
        (["results"], "run-results"),
        (["prediction"], "prediction-row"),
    ):
        result = runner.invoke(app, ["schema", *what])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == _published(f"{name}.schema.json")
    wrong = runner.invoke(app, ["schema", "result"])
    assert wrong.exit_code == 2
    assert "no schema named 'result' (did you mean 'results'" in wrong.stderr
