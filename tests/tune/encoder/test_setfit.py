"""SetFit-style fine-tuning: a few examples per class, the real bundled MiniLM, the real
financial phrasebank."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from rung.models import registry
from rung.models.base import ClassifyRequest, run_sync
from rung.models.encoder import EncoderModel, head_probabilities
from rung.tasks.data import Example, read_examples
from rung.tune import TuneOptions, TuneResult, tune_classifier
from rung.tune.encoder.heads import head_arrays
from rung.tune.encoder.setfit import make_pairs
from rung.tune.encoder.splits import Split

LABELS = ("negative", "neutral", "positive")


def _per_label(examples: list[Example], n: int, skip: int = 0) -> list[Example]:
    picked: list[Example] = []
    for label in LABELS:
        picked.extend([ex for ex in examples if ex.label == label][skip : skip + n])
    return picked


@pytest.fixture(scope="module")
def data(fpb_path: Path) -> tuple[list[Example], list[Example], list[Example]]:
    examples = read_examples(fpb_path)
    random.Random(3).shuffle(examples)
    # 8 per class to train, 3 to validate, a balanced test set of 20 per class
    return _per_label(examples, 8), _per_label(examples, 3, 8), _per_label(examples, 20, 11)


@pytest.fixture(scope="module")
def run(
    data: tuple[list[Example], list[Example], list[Example]],
    tmp_path_factory: pytest.TempPathFactory,
) -> TuneResult:
    train, val, test = data
    return tune_classifier(
        "encoder:minilm-l6",
        [ex.text for ex in train],
        [ex.label for ex in train],
        LABELS,
        tmp_path_factory.mktemp("models") / "fpb-setfit",
        TuneOptions(method="setfit", pairs_per_example=8, max_seq_length=64, threads=1),
        val_texts=[ex.text for ex in val],
        val_labels=[ex.label for ex in val],
        test_texts=[ex.text for ex in test],
        test_labels=[ex.label for ex in test],
    )


def test_a_few_examples_per_class_give_a_useful_classifier(run: TuneResult) -> None:
    assert run.test is not None
    assert run.test["n"] == 60
    assert run.test["accuracy"] > 0.6, run.test  # balanced: a majority guess scores 0.33
    assert run.card["data"] == {"n_train": 24, "n_validation": 9, "n_test": 60}
    assert run.card["method"] == "setfit" and run.card["normalize"] is True
    assert run.card["hyperparameters"]["learning_rate"] == 2e-5
    assert run.card["hyperparameters"]["pairs_per_example"] == 8


def test_the_folder_is_a_sentence_transformer_with_a_head(run: TuneResult) -> None:
    from safetensors import safe_open
    from safetensors.numpy import load_file

    names = {p.name for p in run.out.iterdir()}
    assert {
        "modules.json",
        "model.safetensors",
        "head.safetensors",
        "rung.json",
        "README.md",
    } <= names
    head = load_file(str(run.out / "head.safetensors"))
    assert head["coef"].shape == (3, 384) and head["coef"].dtype == np.float64
    assert head["intercept"].shape == (3,) and head["intercept"].dtype == np.float64
    with safe_open(str(run.out / "head.safetensors"), "np") as f:
        assert json.loads(f.metadata()["labels"]) == list(LABELS)
    readme = (run.out / "README.md").read_text(encoding="utf-8")
    assert "library_name: sentence-transformers" in readme and "- setfit" in readme


def test_the_encoder_backend_gives_the_recorded_test_accuracy(
    run: TuneResult, data: tuple[list[Example], list[Example], list[Example]]
) -> None:
    test = data[2]
    model = registry.create(f"encoder:{run.out}")
    assert isinstance(model, EncoderModel) and model.needs_training is False
    requests = [ClassifyRequest(text=ex.text, labels=LABELS, messages=()) for ex in test]
    predictions = run_sync(model.classify(requests))
    accuracy = sum(p.label == ex.label for p, ex in zip(predictions, test, strict=True)) / len(test)
    assert run.test is not None
    assert accuracy == pytest.approx(run.test["accuracy"])
    assert all(math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-9) for p in predictions)
    assert model.info().extra["tuned"]["method"] == "setfit"
    embeddings = run_sync(model.embed([ex.text for ex in test[:4]]))
    assert embeddings.vectors.shape == (4, 384)
    assert embeddings.tokens == [p.tokens_in for p in predictions[:4]]


def test_pairs_are_half_positive_and_never_a_text_with_itself() -> None:
    split = Split([f"t{i}" for i in range(9)], ["a"] * 4 + ["b"] * 4 + ["c"])
    pairs = make_pairs(split, 4, random.Random(0))
    # 'c' has a single example: no positive pair for it
    assert Counter(p[2] for p in pairs) == {1.0: 16, 0.0: 18}
    label = dict(zip(split.texts, split.labels, strict=True))
    for a, b, target in pairs:
        assert a != b
        assert (label[a] == label[b]) == (target == 1.0)


@pytest.mark.parametrize("n_classes", [2, 3])
def test_head_rows_give_scikit_learns_probabilities(n_classes: int) -> None:
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5))
    names = ["zeta", "alpha", "mid"][:n_classes]
    y = [names[i % n_classes] for i in range(60)]
    model = LogisticRegression(C=10.0).fit(x, y)
    coef, intercept = head_arrays(model, names)
    ours = head_probabilities(x, coef, intercept)
    theirs = model.predict_proba(x)[:, [list(model.classes_).index(n) for n in names]]
    assert np.allclose(ours, theirs, atol=1e-10)
