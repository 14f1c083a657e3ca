"""``rung compare`` on an answer task, end to end: smollm2 answers four questions of the
e-commerce FAQ (../shared/data/ecommerce_faq) from the FAQ indexed on the fly with MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rung.cli.main import app
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
        "bootstrap": 200,
    }
    path = tmp_path / "answer.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_compare_answers_writes_metrics_and_answers(tmp_path: Path, shared_data: Path) -> None:
    spec = write_spec(tmp_path, shared_data)
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = json.loads((out / "answer-results.json").read_text())
    assert results["n_questions"] == 4
    [rung] = results["rungs"]
    metrics = rung["metrics"]
    for name in ("token_f1", "rouge_l", "from_context", "citation_recall", "retrieval_recall"):
        low, high = metrics[name]["ci95"]
        assert 0.0 <= low <= metrics[name]["value"] <= high <= 1.0
    # MiniLM finds the FAQ's own answer among the first three for these questions
    assert metrics["retrieval_recall"]["value"] >= 0.75
    assert rung["tokens_out"] > 0 and rung["latency_ms"]["p50"] > 0
    lines = (out / "answers.jsonl").read_text().splitlines()
    assert len(lines) == 4
    row = json.loads(lines[0])
    assert set(row["cited"]) <= set(row["retrieved"]) and row["answer"]
    print({k: round(v["value"], 3) for k, v in metrics.items()})


def test_published_answer_schema_is_current() -> None:
    from rung.compare.answer import AnswerCompareSpec

    published = json.loads(
        (Path(__file__).parents[2] / "schemas" / "answer-spec.schema.json").read_text()
    )
    assert published == AnswerCompareSpec.model_json_schema(), "run `make schema`"


def test_bad_answer_specs_are_one_line_and_exit_2(tmp_path: Path, shared_data: Path) -> None:
    runner = CliRunner()
    missing = write_spec(tmp_path, shared_data, documents=["no-such-folder"])
    result = runner.invoke(app, ["compare", str(missing), "--out", str(tmp_path / "r1")])
    assert result.exit_code == 2 and "documents not found" in result.output
    assert not (tmp_path / "r1" / "answer-results.json").exists()
    both = write_spec(tmp_path, shared_data, index="idx")
    result = runner.invoke(app, ["compare", str(both), "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "one" in result.output
