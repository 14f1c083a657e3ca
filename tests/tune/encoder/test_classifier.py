"""Full fine-tuning on the real bundled MiniLM and the real financial phrasebank: small runs
(a few hundred examples, short texts, one thread so that two busy cores do not thrash)."""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rung.app import compare_spec
from rung.errors import DataError, RunError
from rung.models import registry
from rung.models.base import ClassifyRequest, run_sync
from rung.models.bundled import minilm_l6_dir
from rung.models.encoder import EncoderModel, sequence_probabilities
from rung.runs import parse_spec
from rung.tasks.classify import load_task_data
from rung.tasks.data import Example, read_examples
from rung.tune import TuneOptions, TuneResult, tune_classifier
from rung.tune.encoder.evaluation import EarlyStopping
from rung.tune.encoder.progress import NullProgress
from rung.tune.encoder.splits import Split, split_validation

LABELS = ("negative", "neutral", "positive")
#: short texts and one thread: a few seconds per epoch on a busy 2-core machine
SMALL = {"max_seq_length": 64, "threads": 1, "batch_size": 8}


class Recorder(NullProgress):
    def __init__(self) -> None:
        self.total = 0
        self.losses: list[float] = []
        self.scores: list[tuple[float, float]] = []

    def start(self, total_steps: int) -> None:
        self.total = total_steps

    def step(self, loss: float) -> None:
        self.losses.append(loss)

    def evaluated(self, epoch: float, score: float) -> None:
        self.scores.append((epoch, score))


def _write_csv(path: Path, examples: list[Example]) -> Path:
    import csv

    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for ex in examples:
            writer.writerow([ex.text, ex.label])
    return path


@pytest.fixture(scope="module")
def task_dir(fpb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 400-example sample of the phrasebank and a compare spec on it (test_size 0.25)."""
    folder = tmp_path_factory.mktemp("fpb-task")
    examples = read_examples(fpb_path)
    random.Random(1).shuffle(examples)
    _write_csv(folder / "fpb.csv", examples[:400])
    spec = {
        "task": {"data": {"path": "fpb.csv"}, "labels": list(LABELS), "test_size": 0.25},
        "models": ["encoder:minilm-l6"],
        "measure": {"load": None, "memory": False},
    }
    (folder / "spec.json").write_text(json.dumps(spec), encoding="utf-8")
    return folder


def _spec(task_dir: Path, models: list[Any]) -> Any:
    data = json.loads((task_dir / "spec.json").read_text(encoding="utf-8"))
    data["models"] = models
    return parse_spec(data)


@pytest.fixture(scope="module")
def run(task_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[TuneResult, Recorder]:
    data = load_task_data(_spec(task_dir, ["encoder:minilm-l6"]).task, task_dir)
    recorder = Recorder()
    result = tune_classifier(
        "encoder:minilm-l6",
        [ex.text for ex in data.train],
        [ex.label for ex in data.train],
        data.labels,
        tmp_path_factory.mktemp("models") / "fpb-full",
        TuneOptions(epochs=2, patience=0, **SMALL),
        test_texts=[ex.text for ex in data.test],
        test_labels=[ex.label for ex in data.test],
        data_info={"path": "fpb.csv"},
        progress=recorder,
    )
    return result, recorder


def test_training_lowers_the_loss_and_beats_the_untrained_head(
    run: tuple[TuneResult, Recorder], task_dir: Path
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    result, recorder = run
    assert recorder.total == len(recorder.losses)
    first, last = recorder.losses[:8], recorder.losses[-8:]
    assert sum(last) / len(last) < 0.8 * sum(first) / len(first), (first, last)
    # the same base with the same seed's fresh head, before any training
    data = load_task_data(_spec(task_dir, ["encoder:minilm-l6"]).task, task_dir)
    torch.manual_seed(0)
    fresh = AutoModelForSequenceClassification.from_pretrained(str(minilm_l6_dir()), num_labels=3)
    fresh.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(minilm_l6_dir()))
    probs, _ = sequence_probabilities(fresh, tokenizer, [ex.text for ex in data.test], 64, 32)
    untrained = sum(
        LABELS[k] == ex.label for k, ex in zip(probs.argmax(axis=1), data.test, strict=True)
    ) / len(data.test)
    majority = Counter(ex.label for ex in data.test).most_common(1)[0][1] / len(data.test)
    assert result.test is not None
    tuned = result.test["accuracy"]
    assert tuned > untrained + 0.1, (tuned, untrained)
    assert tuned > majority + 0.05, (tuned, majority)
    assert result.test["macro_f1"] > 0.5


def test_the_folder_is_a_sentence_transformer_and_a_linear_head(
    run: tuple[TuneResult, Recorder],
) -> None:
    """The default (mean pooling): sentence-transformers alone, with the head's two arrays,
    labels the texts as the encoder rung does."""
    import numpy as np
    from safetensors.numpy import load_file
    from sentence_transformers import SentenceTransformer

    result, _ = run
    folder = result.out
    names = {p.name for p in folder.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "modules.json",
        "head.safetensors",
        "rung.json",
        "README.md",
    } <= names
    assert not any(n.startswith(".") or "checkpoint" in n for n in names), names
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]
    st = SentenceTransformer(str(folder), device="cpu")
    assert st.max_seq_length == 64
    head = load_file(str(folder / "head.safetensors"))
    assert head["coef"].shape == (3, 384) and head["intercept"].shape == (3,)
    texts = ["Profit rose 40 percent.", "The company cut 300 jobs.", "The meeting is on Monday."]
    logits = st.encode(texts) @ head["coef"].T + head["intercept"]
    by_rung = run_sync(
        registry.create(f"encoder:{folder}").classify(
            [ClassifyRequest(text=t, labels=LABELS, messages=()) for t in texts]
        )
    )
    assert [LABELS[k] for k in np.argmax(logits, axis=1)] == [p.label for p in by_rung]


def test_pooling_cls_writes_a_standard_hugging_face_classifier(
    tuned_sequence_classifier: Path,
) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tuned_sequence_classifier
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "rung.json", "README.md"} <= names
    assert "head.safetensors" not in names and "modules.json" not in names
    model = AutoModelForSequenceClassification.from_pretrained(str(folder))
    assert model.config.architectures == ["BertForSequenceClassification"]
    assert [model.config.id2label[i] for i in range(3)] == list(LABELS)
    assert AutoTokenizer.from_pretrained(str(folder)).model_max_length == 48
    card = json.loads((folder / "rung.json").read_text(encoding="utf-8"))
    assert (card["head"], card["pooling"]) == ("sequence", "cls")
    assert "head_lr_multiplier" not in card["hyperparameters"]
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "library_name: transformers" in readme and "pipeline(" in readme
    model_rung = registry.create(f"encoder:{folder}")
    [p] = run_sync(
        model_rung.classify([ClassifyRequest(text="Sales fell.", labels=LABELS, messages=())])
    )
    assert p.label in LABELS and model_rung.info().extra["head"] == "sequence classifier"


def test_rung_json_is_the_model_card(run: tuple[TuneResult, Recorder]) -> None:
    result, _ = run
    card = json.loads((result.out / "rung.json").read_text(encoding="utf-8"))
    assert card == json.loads(json.dumps(result.card))
    assert card["format"] == 1 and card["kind"] == "classifier" and card["method"] == "full"
    assert card["base"] == "encoder:minilm-l6"
    assert card["labels"] == list(LABELS)
    assert card["max_seq_length"] == 64 and card["seed"] == 0
    assert card["hyperparameters"]["learning_rate"] == 1e-4
    assert card["hyperparameters"]["pooling"] == "mean"
    assert (card["head"], card["pooling"], card["normalize"]) == ("linear", "mean", False)
    assert card["data"] == {"path": "fpb.csv", "n_train": 270, "n_validation": 30, "n_test": 100}
    assert set(card["test"]) >= {"accuracy", "accuracy_ci", "macro_f1"}
    low, high = card["test"]["accuracy_ci"]
    assert low <= card["test"]["accuracy"] <= high
    assert card["train_seconds"] > 0 and card["created"] and card["rung_version"]
    assert [h["epoch"] for h in card["history"]] == [1.0, 2.0]
    readme = (result.out / "README.md").read_text(encoding="utf-8")
    assert readme.startswith('---\nbase_model: "sentence-transformers/all-MiniLM-L6-v2"')
    assert "library_name: sentence-transformers" in readme and "pipeline(" not in readme
    assert f"{card['test']['accuracy']:.3f}" in readme
    assert "# fpb-full" in readme and "encoder:./fpb-full" in readme


def test_compare_scores_the_folder_as_the_card_says(
    run: tuple[TuneResult, Recorder], task_dir: Path, tmp_path: Path
) -> None:
    from rung.advise import advice_for_run
    from rung.advise.figures import Constraints

    result, _ = run
    spec = _spec(task_dir, [f"encoder:{result.out}"])
    compared = compare_spec(spec, task_dir, tmp_path / "run", use_cache=False)
    [rung] = compared.results.rungs
    assert result.test is not None
    assert rung.quality.accuracy.value == pytest.approx(result.test["accuracy"])
    assert rung.fit_s is None  # a tuned folder does not train again
    # advise reads the folder's card (its size from the weights) and can recommend it
    advice = advice_for_run(tmp_path / "run", Constraints(min_accuracy=0.5, device="phone"))
    assert advice.recommended is not None and advice.recommended.rung.model == rung.model
    assert advice.recommended.card is not None and advice.recommended.card.params


def test_the_encoder_backend_uses_the_trained_head(run: tuple[TuneResult, Recorder]) -> None:
    result, _ = run
    model = registry.create(f"encoder:{result.out}")
    assert isinstance(model, EncoderModel)
    assert model.needs_training is False
    model.fit([], [], list(reversed(LABELS)))  # same labels, another order: nothing to do
    with pytest.raises(DataError, match=r"fine-tuned on the labels negative, neutral, positive"):
        model.fit([], [], ["bad", "good"])
    texts = ["Profit rose 40 percent.", "The company cut 300 jobs.", "The meeting is on Monday."]
    requests = [ClassifyRequest(text=t, labels=LABELS, messages=()) for t in texts]
    batch = run_sync(model.classify(requests))
    singles = [run_sync(model.classify([r]))[0] for r in requests]
    for a, b in zip(batch, singles, strict=True):
        assert a.label == b.label and a.tokens_in == b.tokens_in > 3
        assert math.isclose(sum(a.scores.values()), 1.0, abs_tol=1e-9)
        assert a.confidence == pytest.approx(b.confidence or 0, abs=1e-5)
    info = model.info()
    assert info.extra["tuned"] == {
        "method": "full",
        "base": "encoder:minilm-l6",
        "labels": list(LABELS),
    }
    assert info.context_length == 64 and info.params is not None
    embeddings = run_sync(model.embed(texts))
    assert embeddings.vectors.shape == (3, 384) and str(embeddings.vectors.dtype) == "float32"
    assert embeddings.tokens == [p.tokens_in for p in batch]
    norms = (embeddings.vectors**2).sum(axis=1) ** 0.5
    assert all(math.isclose(n, 1.0, abs_tol=1e-5) for n in norms)
    assert model.fingerprint() != registry.create("encoder:minilm-l6").fingerprint()


def test_the_same_seed_gives_the_same_figures_and_no_test_text_is_trained_on(
    fpb_path: Path, tmp_path: Path
) -> None:
    examples = read_examples(fpb_path)
    random.Random(2).shuffle(examples)
    train, test = examples[:60], examples[60:100]
    # five test texts also sit in the training data: they must be left out of training
    leaked = train + test[:5]
    options = TuneOptions(epochs=1, **SMALL)
    runs = [
        tune_classifier(
            "minilm-l6",
            [ex.text for ex in leaked],
            [ex.label for ex in leaked],
            LABELS,
            tmp_path / f"run{i}",
            options,
            test_texts=[ex.text for ex in test],
            test_labels=[ex.label for ex in test],
        )
        for i in range(2)
    ]
    first, second = (r.card for r in runs)
    assert first["test"] == second["test"]
    assert first["validation"] == second["validation"]
    assert first["history"] == second["history"]
    assert first["data"]["dropped_test_overlap"] == 5
    assert first["data"]["n_train"] + first["data"]["n_validation"] == 60


def test_an_existing_model_is_kept_without_force(
    run: tuple[TuneResult, Recorder], tmp_path: Path
) -> None:
    result, _ = run
    before = (result.out / "rung.json").read_text(encoding="utf-8")
    with pytest.raises(RunError, match="already holds a model; pass --force"):
        tune_classifier(
            "minilm-l6",
            ["a", "b", "c", "d"],
            ["x", "x", "y", "y"],
            ["x", "y"],
            result.out,
            TuneOptions(),
        )
    assert (result.out / "rung.json").read_text(encoding="utf-8") == before


def test_the_validation_split_is_stratified_with_every_label_on_both_sides() -> None:
    labels = ["a"] * 50 + ["b"] * 8 + ["c"] * 2
    split = Split([f"text {i}" for i in range(60)], labels)
    train, val = split_validation(split, ["a", "b", "c"], 0.1, seed=0)
    assert Counter(val.labels) == {"a": 5, "b": 1, "c": 1}
    assert Counter(train.labels) == {"a": 45, "b": 7, "c": 1}
    assert not set(train.texts) & set(val.texts)
    again = split_validation(split, ["a", "b", "c"], 0.1, seed=0)
    assert again == (train, val)


def test_early_stopping_keeps_the_best_and_waits_patience_evaluations() -> None:
    saved: list[int] = []
    stopper = EarlyStopping(TuneOptions(patience=2), lambda: saved.append(1), NullProgress())
    scores = [0.5, 0.7, 0.6, 0.7, 0.65]
    stops = [
        stopper.update(float(i + 1), i, 1.0, {"macro_f1": s, "accuracy": s})
        for i, s in enumerate(scores[:4])
    ]
    assert stops == [False, False, False, True]  # 0.7 again is no improvement
    assert stopper.best == 0.7 and stopper.best_epoch == 2.0
    assert len(saved) == 2 and not stopper.last_was_best
    never = EarlyStopping(TuneOptions(patience=0), lambda: None, NullProgress())
    assert not any(
        never.update(float(i), i, 1.0, {"macro_f1": 0.1, "accuracy": 0.1}) for i in range(5)
    )


def test_too_few_examples_of_a_label_are_refused_before_training(tmp_path: Path) -> None:
    texts = [f"good {i}" for i in range(6)] + ["bad 0"]
    labels = ["pos"] * 6 + ["neg"]
    with pytest.raises(DataError, match=r"'neg' has 1; rung tune needs at least 2 of each"):
        tune_classifier("minilm-l6", texts, labels, ["neg", "pos"], tmp_path / "m", TuneOptions())
    with pytest.raises(DataError, match=r"labels missing from the training data: 'meh' has 0"):
        tune_classifier(
            "minilm-l6", texts, labels, ["neg", "pos", "meh"], tmp_path / "m", TuneOptions()
        )
    with pytest.raises(DataError, match=r"not in the label set .*'neg' \(1 rows\)"):
        tune_classifier("minilm-l6", texts, labels, ["pos", "meh"], tmp_path / "m", TuneOptions())
    assert not (tmp_path / "m").exists()
    assert not list(tmp_path.iterdir())
