"""The token-classification head for extract: the bundled minilm-l6 tuned on a small
CoNLL-2003 slice, its tags one per word, scored by seqeval; and `rung tune-extract`."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from seqeval.metrics import f1_score
from typer.testing import CliRunner

from rung.cli.main import app
from rung.tasks.extract import ConllSource, read_conll
from rung.tune.encoder.tokens import tag_set, train_token_tagger


def test_tagger_tags_each_word(shared_data: Path) -> None:
    conll = shared_data / "conll2003"
    train = read_conll(ConllSource(path=conll / "eng.train"), Path("."))[:48]
    test = read_conll(ConllSource(path=conll / "eng.testa"), Path("."))[:12]
    tagger = train_token_tagger("minilm-l6", train, epochs=2, learning_rate=3e-4)
    pred = tagger.predict([i.extra["tokens"] for i in test])
    assert [len(p) for p in pred] == [len(i.reference) for i in test]
    assert {t for p in pred for t in p} <= set(tag_set(train))
    assert tag_set(train)[0] == "O" and "B-PER" in tag_set(train)
    assert 0.0 <= f1_score([i.reference for i in test], pred) <= 1.0


def test_tune_extract_command(shared_data: Path, tmp_path: Path) -> None:
    conll = shared_data / "conll2003"
    spec = tmp_path / "ner.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "task": {
                    "type": "extract",
                    "data": {"path": str(conll / "eng.train")},
                    "test_data": {"path": str(conll / "eng.testa")},
                    "splits": {"test_size": 8, "train_size": 32},
                },
                "models": ["encoder:minilm-l6"],
            }
        )
    )
    out = tmp_path / "tagger"
    result = CliRunner().invoke(
        app, ["tune-extract", str(spec), "--out", str(out), "--epochs", "1"]
    )
    assert result.exit_code == 0, result.output
    scores = json.loads((out / "scores.json").read_text())
    assert scores["n_train"] == 32 and scores["n_test"] == 8
    assert set(scores["quality"]) == {"precision", "recall", "f1"}
    assert (out / "config.json").is_file()
    wrong = CliRunner().invoke(
        app, ["tune-extract", str(tmp_path / "nope.yaml"), "--out", str(out)]
    )
    assert wrong.exit_code == 2
