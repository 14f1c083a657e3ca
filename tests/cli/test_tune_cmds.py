"""``rung tune`` through the real command (Typer's runner, in process): tiny real runs, and
every kind of bad input ends in one line, exit status 2, and no model folder."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.models.bundled import smollm2_135m_gguf
from rung.runs.spec import load_spec
from rung.tasks.classify import load_task_data
from rung.tasks.data import read_examples

runner = CliRunner()
#: a short run: one epoch over short texts, one thread on a busy machine
FAST = ["--epochs", "1", "--max-seq-length", "32", "--batch-size", "8", "--threads", "1"]


def _csv(path: Path, rows: list[tuple[str, str]], text: str = "text", label: str = "label") -> Path:
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([text, label])
        writer.writerows(rows)
    return path


@pytest.fixture
def fpb_rows(fpb_path: Path) -> list[tuple[str, str]]:
    examples = read_examples(fpb_path)
    random.Random(4).shuffle(examples)
    return [(ex.text, ex.label) for ex in examples[:80]]


def _fails(args: list[str], out: Path, expected: str) -> str:
    existed = out.exists()
    result = runner.invoke(app, ["tune", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:"), message
    assert expected in message, message
    assert len(message.splitlines()) <= 4, message  # one line (Rich may wrap a long one)
    assert existed or not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    return message


def test_tune_a_csv_then_refuse_and_force_a_second_model(
    fpb_rows: list[tuple[str, str]], tmp_path: Path
) -> None:
    data = _csv(
        tmp_path / "news.csv", [(t, {"positive": "1"}.get(lab, lab)) for t, lab in fpb_rows]
    )
    out = tmp_path / "models" / "news"
    args = ["tune", str(data), "--out", str(out), "--label-map", "1=positive", *FAST]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"use it as a rung: encoder:{out.resolve()}" in result.output.replace("\n", "")
    assert "test" in result.output and "validation" in result.output
    card = json.loads((out / "rung.json").read_text(encoding="utf-8"))
    assert card["labels"] == ["negative", "neutral", "positive"]
    assert card["data"]["n_test"] == 16  # the default 20% held out
    assert card["data"]["path"] == str(data.resolve())
    assert len(card["data"]["sha256"]) == 64
    created = card["created"]
    (out / "marker").write_text("the old model", encoding="utf-8")

    _fails([str(data), "--label-map", "1=positive", *FAST], out, "already holds a model")
    assert (out / "marker").exists()

    result = runner.invoke(app, [*args, "--force"])
    assert result.exit_code == 0, result.output
    assert not (out / "marker").exists()
    assert json.loads((out / "rung.json").read_text(encoding="utf-8"))["created"] >= created
    assert [p.name for p in out.parent.iterdir()] == ["news"]


def test_tune_from_a_spec_holds_out_compares_test_split(
    fpb_rows: list[tuple[str, str]], tmp_path: Path
) -> None:
    _csv(tmp_path / "news.csv", fpb_rows)
    spec = tmp_path / "compare.yaml"
    spec.write_text(
        "task:\n  data: {path: news.csv}\n  test_size: 20\n  seed: 3\nmodels: [encoder:minilm-l6]\n",
        encoding="utf-8",
    )
    out = tmp_path / "tuned"
    result = runner.invoke(
        app,
        [
            "tune",
            "--spec",
            str(spec),
            "--out",
            str(out),
            "--method",
            "setfit",
            "--pairs",
            "2",
            *FAST,
        ],
    )
    assert result.exit_code == 0, result.output
    card = json.loads((out / "rung.json").read_text(encoding="utf-8"))
    split = load_task_data(load_spec(spec).task, tmp_path)
    assert card["method"] == "setfit" and card["seed"] == 3
    assert card["data"]["n_test"] == len(split.test) == 20
    assert card["data"]["n_train"] + card["data"]["n_validation"] == len(split.train)
    assert "dropped_test_overlap" not in card["data"]
    assert not {ex.text for ex in split.test} & {ex.text for ex in split.train}
    assert card["data"]["spec"] == str(spec.resolve())


ROWS = [(f"great product number {i}", "positive") for i in range(10)] + [
    (f"awful product number {i}", "negative") for i in range(10)
]


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return _csv(tmp_path / "reviews.csv", ROWS)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        (["--labels", "negative"], "the data has labels that --labels does not list: 'positive'"),
        (
            ["--labels", "negative,positive,mixed"],
            "--labels lists labels that no example has: 'mixed'",
        ),
        (["--label-map", "positive"], "is not of the form OLD=NEW"),
        (["--label", "sentiment"], "no label column 'sentiment'"),
        (["--base", "encoder:minilm-l7"], "did you mean 'minilm-l6'"),
        (["--base", "encoder:/no/such/model"], "model folder not found"),
        (["--base", "llamacpp:smollm2-135m-instruct"], "rung tune fine-tunes encoder models"),
        (["--max-seq-length", "4096"], "512 positions"),
        (["--lr", "-1"], "learning_rate"),
        (["--val-size", "40"], "val_size 40 leaves no training examples"),
    ],
)
def test_bad_options_are_refused_before_training(
    small: Path, tmp_path: Path, extra: list[str], expected: str
) -> None:
    _fails([str(small), *extra], tmp_path / "model", expected)


def test_a_class_with_one_example_is_named(tmp_path: Path) -> None:
    data = _csv(tmp_path / "d.csv", [*ROWS, ("so-so product", "mixed")])
    message = _fails([str(data)], tmp_path / "model", "too few training examples")
    assert "'mixed' has 1" in message


def test_a_label_only_in_the_test_file_is_missing_from_training(tmp_path: Path) -> None:
    train = _csv(tmp_path / "train.csv", ROWS)
    test = _csv(tmp_path / "test.csv", [("a so-so product", "mixed"), ("great", "positive")])
    _fails([str(train), "--test", str(test)], tmp_path / "model", "'mixed' has 0; add examples")


def test_a_gguf_base_is_not_an_encoder(small: Path, tmp_path: Path) -> None:
    gguf = smollm2_135m_gguf()
    _fails([str(small), "--base", f"encoder:{gguf}"], tmp_path / "m1", "is a GGUF file")
    _fails([str(small), "--base", str(gguf)], tmp_path / "m2", "is a GGUF file")


def test_an_uncached_hub_id_offline_says_so(
    small: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    _fails(
        [str(small), "--base", "encoder:rung-tests/no-such-encoder"],
        tmp_path / "model",
        "not in the local Hugging Face cache",
    )


def test_a_folder_with_other_files_is_not_replaced(small: Path, tmp_path: Path) -> None:
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me", encoding="utf-8")
    result = runner.invoke(app, ["tune", str(small), "--out", str(out), "--force"])
    assert result.exit_code == 2
    assert "not empty and holds no model" in result.stderr
    assert [p.name for p in out.iterdir()] == ["todo.txt"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ([], "give the labelled data as DATA"),
        (["--spec", "compare.yaml", "DATA"], "one of the two"),
        (["--spec", "compare.yaml", "--labels", "a,b"], "drop --labels"),
        (["--spec", "missing.yaml"], "spec file not found"),
    ],
)
def test_data_and_spec_are_exclusive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _csv(tmp_path / "DATA", ROWS)
    (tmp_path / "compare.yaml").write_text(
        "task:\n  data: {path: DATA, format: csv}\nmodels: [encoder:minilm-l6]\n", encoding="utf-8"
    )
    _fails(args, tmp_path / "model", expected)


def test_no_out_is_asked_for(small: Path) -> None:
    result = runner.invoke(app, ["tune", str(small)])
    assert result.exit_code == 2
    assert "--out" in result.stderr
