"""``rung compare`` on an answer task, end to end: smollm2 answers four questions of the
e-commerce FAQ (../shared/data/ecommerce_faq) from the FAQ indexed on the fly with MiniLM; the
run folder is any task's (results.json, predictions.jsonl, report.html)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from rung.cli.main import app
from rung.route.cascade import CascadeOptions
from rung.runs import PredictionRow, RunResults
from rung.runs.quality import TextQuality
from tests.serve.conftest import LLAMA_OPTIONS


def write_spec(tmp_path: Path, shared_data: Path, **task: object) -> Path:
    faq = shared_data / "ecommerce_faq" / "Ecommerce_FAQ_Chatbot_dataset.json"
    rows = json.loads(faq.read_text(encoding="utf-8"))["questions"]
    # the gold passage of question i is record i of the indexed FAQ (its row number)
    questions = [
        {"q": r["question"], "a": r["answer"], "gold": str(i)} for i, r in enumerate(rows, 1)
    ]
    (tmp_path / "qa.jsonl").write_text("".join(json.dumps(q) + "\n" for q in questions))
    spec = {
        "name": "faq answers",
        "task": {
            "type": "answer",
            "data": {"path": "qa.jsonl", "question": "q", "answer": "a", "gold": "gold"},
            "documents": [str(faq)],
            "k": 3,
            "limit": 4,
            "max_tokens": 40,
        }
        | task,
        "models": [{"id": "llamacpp:smollm2-135m-instruct", "options": LLAMA_OPTIONS}],
        "measure": {"bootstrap": 200, "load": None, "memory": False},
    }
    path = tmp_path / "answer.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_compare_answers_writes_a_run_folder(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNG_CACHE_DIR", str(tmp_path / "cache"))
    judge = {"model": "llamacpp:smollm2-135m-instruct", "options": LLAMA_OPTIONS}
    spec = write_spec(tmp_path, shared_data, judge=judge)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = RunResults.model_validate_json((out / "results.json").read_text())
    assert results.task.type == "answer" and results.task.n_test == 4
    [rung] = results.rungs
    assert isinstance(rung.quality, TextQuality) and rung.quality.primary == "token_f1"
    scores = rung.quality.scores
    assert rung.quality.judge is not None and "smollm2" in rung.quality.judge
    for name in (
        "token_f1",
        "rouge_l",
        "from_context",
        "citation_recall",
        "retrieval_recall",
        "faithfulness",
    ):
        low, high = scores[name].ci95
        assert 0.0 <= low <= scores[name].value <= high <= 1.0
    # MiniLM finds the FAQ's own answer among the first three for these questions
    assert scores["retrieval_recall"].value >= 0.75
    assert rung.tokens.out > 0 and rung.latency_ms.p50 > 0
    rows = [PredictionRow.model_validate_json(line) for line in _lines(out)]
    assert len(rows) == 4
    for row in rows:
        assert row.details is not None and row.generated
        assert set(row.details["cited"]) <= set(row.details["retrieved"])
        assert len(row.details["retrieved"]) == 3
        assert row.item_metrics is not None and row.confidence == row.item_metrics["confidence"]
    html = (out / "report.html").read_text()
    assert "token_f1" in html and "Examples" in html
    # the index of the documents was built once, into the cache folder, and is reused
    [index] = (tmp_path / "cache" / "indexes").iterdir()
    built = (index / "index.db").stat().st_mtime_ns
    # and `rung check` gates the unchanged spec against this run: it passes
    again = CliRunner().invoke(
        app, ["check", str(spec), "--baseline", str(out), "--out", str(tmp_path / "run2")]
    )
    assert again.exit_code == 0, again.output
    assert "passed" in again.stdout
    assert (index / "index.db").stat().st_mtime_ns == built
    assert [p.name for p in (tmp_path / "cache" / "indexes").iterdir()] == [index.name]
    print({k: round(v.value, 3) for k, v in scores.items()})


def test_route_calibrate_weighs_an_answer_runs_token_f1(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNG_CACHE_DIR", str(tmp_path / "cache"))
    spec = write_spec(tmp_path, shared_data)
    data = yaml.safe_load(spec.read_text())
    data["models"] = [
        {"id": "llamacpp:smollm2-135m-instruct", "options": LLAMA_OPTIONS},
        {"id": "llamacpp:gemma-3-270m", "options": LLAMA_OPTIONS},
    ]
    spec.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [PredictionRow.model_validate_json(line) for line in _lines(out)]
    f1 = {
        rung: sum((r.item_metrics or {})["token_f1"] for r in rows if r.rung == rung) / 4
        for rung in {r.rung for r in rows}
    }
    cascades = tmp_path / "cascades.yaml"
    routed = CliRunner().invoke(
        app,
        [
            "route", "calibrate", str(out), "--target", "0.9", "--json", "--resamples", "200",
            "--out", str(cascades), "--name", "faq",
        ],
    )  # fmt: skip
    assert routed.exit_code == 0, routed.output
    cal = json.loads(routed.stdout)
    # the cascade is weighed on the answers' token F1, the run's primary metric
    assert cal["metric"] == "token_f1"
    assert cal["top_accuracy"] == pytest.approx(max(f1.values()))
    for label, value in f1.items():
        [single] = [p for p in cal["singles"] if p["policy"][0]["rung"] == label]
        assert single["accuracy"] == pytest.approx(value)
    assert cal["chosen"]["accuracy"]["value"] >= 0.9 * cal["top_accuracy"] - 1e-9
    # the cascade it writes is one `rung serve` answers /v1/ask with, at these thresholds
    section = yaml.safe_load(cascades.read_text())["cascades"]["faq"]
    assert section["confidence"] == "grounded" and "labels" not in section
    assert all(r["options"] == LLAMA_OPTIONS for r in section["rungs"])
    options = CascadeOptions.model_validate(section)
    assert [r.threshold for r in options.rungs] == [p["threshold"] for p in cal["chosen"]["policy"]]


def _lines(out: Path) -> list[str]:
    return (out / "predictions.jsonl").read_text().splitlines()


def test_bad_answer_specs_are_one_line_and_exit_2(
    tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNG_CACHE_DIR", str(tmp_path / "cache"))
    runner = CliRunner()
    missing = write_spec(tmp_path, shared_data, documents=["no-such-folder"])
    result = runner.invoke(app, ["compare", str(missing), "--out", str(tmp_path / "r1")])
    assert result.exit_code == 2 and "documents not found" in result.output
    assert not (tmp_path / "r1").exists()
    both = write_spec(tmp_path, shared_data, index="idx")
    result = runner.invoke(app, ["compare", str(both), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "one" in result.output
    nowhere = write_spec(tmp_path, shared_data, index="idx", documents=None)
    result = runner.invoke(app, ["compare", str(nowhere), "--out", str(tmp_path / "r3")])
    assert result.exit_code == 2 and "no index at" in result.output
    assert not (tmp_path / "r3").exists()
