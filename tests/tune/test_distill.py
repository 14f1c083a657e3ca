"""rung distill with real teacher rungs (the bundled SmolLM2 through llama.cpp, a MiniLM
classifier) and a real student fine-tune on the financial phrasebank."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.runs.spec import load_spec
from rung.tasks.classify import load_task_data

runner = CliRunner()
LLM = "llamacpp:smollm2-135m-instruct"


def _spec(tmp_path: Path, fpb_path: Path, *, train: int, test: int, shots: int = 0) -> Path:
    path = tmp_path / "fpb.yaml"
    path.write_text(
        f"""name: distill test
task:
  type: classify
  data: {{path: {fpb_path}}}
  labels: [negative, neutral, positive]
  train_size: {train}
  test_size: {test}
  seed: 3
  prompt: {{shots: {shots}}}
models:
  - encoder:minilm-l6
  - {{id: {LLM}, label: smol, options: {{n_threads: 1}}}}
measure: {{load: null, memory: false}}
""",
        encoding="utf-8",
    )
    return path


def _distill(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["distill", *args, "--epochs", "1"])
    return result.exit_code, result.output + (result.stderr or "")


@pytest.mark.slow
def test_llm_teacher_labels_then_student_learns_and_resumes_from_cache(
    tmp_path: Path, fpb_path: Path
) -> None:
    spec = _spec(tmp_path, fpb_path, train=120, test=30, shots=2)
    out = tmp_path / "student"
    # The spec's last rung (SmolLM2 with its options) is the default teacher.
    code, output = _distill(str(spec), "--out", str(out), "--limit", "30", "--threshold", "0.38")
    assert code == 0, output
    first = json.loads((out / "distill.json").read_text(encoding="utf-8"))
    stats = first["labelling"]
    assert first["teacher"] == LLM
    assert stats["asked"] == 30 and stats["cached"] == 0
    assert stats["kept"] + stats["low_confidence"] + stats["unparsed"] == 30
    assert stats["tokens_in"] > 30 * 20  # the prompt was really sent
    assert 0.0 <= stats["teacher_label_accuracy"] <= 1.0
    assert first["cost_usd"] is not None and first["cost_usd"] > 0  # machine time of a local LLM
    card = json.loads((out / "rung.json").read_text(encoding="utf-8"))
    assert card["data"]["labelled_by"] == LLM
    assert card["labels"] == ["negative", "neutral", "positive"]

    # A larger run pays only for the new texts: the first 30 answers come from the cache,
    # and so does the whole test split.
    code, output = _distill(
        str(spec), "--out", str(out), "--limit", "60", "--threshold", "0.38", "--force"
    )
    assert code == 0, output
    second = json.loads((out / "distill.json").read_text(encoding="utf-8"))
    assert second["labelling"]["asked"] == 60
    assert second["labelling"]["cached"] == 30
    # SmolLM2 is unsure of some texts: the threshold drops them from the student's data
    assert second["labelling"]["low_confidence"] > 0
    assert second["labelling"]["kept"] < 60
    assert "30 from the cache" in output
    # agreement and accuracy are measured on the same gold test split
    assert second["test_n"] == 30
    assert 0.0 <= second["agreement"] <= 1.0


def test_unlabelled_file_drops_test_texts_and_measures_teacher_labels(
    tmp_path: Path, fpb_path: Path
) -> None:
    spec = _spec(tmp_path, fpb_path, train=150, test=40)
    data = load_task_data(load_spec(spec).task, spec.parent)
    # A file of texts the user has: some gold-labelled, and five that are in the test split,
    # which must never be trained on.
    pool = tmp_path / "pool.csv"
    rows = [(ex.text, ex.label) for ex in data.train[:60]] + [
        (ex.text, ex.label) for ex in data.test[:5]
    ]
    with pool.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["sentence", "gold"])
        writer.writerows(rows)
    out = tmp_path / "student"
    code, output = _distill(
        str(spec),
        "--teacher",
        "encoder:minilm-l6",
        "--unlabelled",
        str(pool),
        "--text",
        "sentence",
        "--gold",
        "gold",
        "--out",
        str(out),
    )
    assert code == 0, output
    report = json.loads((out / "distill.json").read_text(encoding="utf-8"))
    assert report["labelling"]["asked"] == 60
    assert report["labelling"]["teacher_label_accuracy"] > 0.8
    assert report["student_test"]["accuracy"] > 1 / 3
    assert "Use it as a rung: encoder:" in output.replace("\n", "")


def test_bad_input_exits_2_and_writes_nothing(tmp_path: Path, fpb_path: Path) -> None:
    spec = _spec(tmp_path, fpb_path, train=80, test=20)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "rung.json").write_text("{}", encoding="utf-8")
    code, output = _distill(str(spec), "--teacher", "encoder:minilm-l6", "--out", str(taken))
    assert code == 2 and "--force" in output
    assert sorted(p.name for p in taken.iterdir()) == ["rung.json"]

    out = tmp_path / "student"
    code, output = _distill(str(spec), "--teacher", "smoll", "--out", str(out))
    assert code == 2 and "did you mean 'smol'" in output
    assert not out.exists()

    pool = tmp_path / "pool.jsonl"
    pool.write_text('{"body": "Profit rose"}\n', encoding="utf-8")
    code, output = _distill(str(spec), "--unlabelled", str(pool), "--out", str(out))
    assert code == 2 and "body" in output and "text" in output
    assert not out.exists()
