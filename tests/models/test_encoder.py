"""The encoder backend on the real bundled MiniLM and the real financial phrasebank."""

from __future__ import annotations

import math
import random
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from rung.errors import (
    ConfigurationError,
    DataError,
    ModelLoadError,
    ModelNotFoundError,
    SpecError,
)
from rung.models import registry
from rung.models.base import ClassifyRequest, Prediction, run_sync
from rung.models.bundled import minilm_l6_dir
from rung.models.encoder import EncoderModel
from rung.tasks.data import Example, read_examples

LABELS = ("negative", "neutral", "positive")


def requests_for(
    examples: list[Example], labels: tuple[str, ...] = LABELS
) -> list[ClassifyRequest]:
    return [ClassifyRequest(text=ex.text, labels=labels, messages=()) for ex in examples]


def fit(model: EncoderModel, examples: list[Example], labels: tuple[str, ...] = LABELS) -> None:
    model.fit([ex.text for ex in examples], [ex.label for ex in examples], labels)


def encoder(name: str = "minilm-l6", **options: Any) -> EncoderModel:
    model = registry.create(f"encoder:{name}", options)
    assert isinstance(model, EncoderModel)
    return model


@pytest.fixture(scope="module")
def split(fpb_path: Path) -> tuple[list[Example], list[Example]]:
    examples = read_examples(fpb_path)
    random.Random(0).shuffle(examples)
    return examples[:300], examples[300:400]


@pytest.fixture(scope="module")
def trained(split: tuple[list[Example], list[Example]]) -> EncoderModel:
    model = encoder()
    model.check()
    model.load()
    fit(model, split[0])
    return model


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach a host fails at once, as on a machine without a network."""

    def refuse(*args: object, **kwargs: object) -> Any:
        raise OSError("network access attempted in a test that must stay offline")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_accuracy_beats_the_majority_class(
    trained: EncoderModel, split: tuple[list[Example], list[Example]]
) -> None:
    test = split[1]
    predictions = run_sync(trained.classify(requests_for(test)))
    accuracy = sum(p.label == ex.label for p, ex in zip(predictions, test, strict=True)) / len(test)
    majority = Counter(ex.label for ex in test).most_common(1)[0][1] / len(test)
    assert accuracy > 0.7
    assert accuracy > majority + 0.1, (accuracy, majority)


def test_scores_are_probabilities_over_the_label_set(
    trained: EncoderModel, split: tuple[list[Example], list[Example]]
) -> None:
    predictions = run_sync(trained.classify(requests_for(split[1][:10])))
    for p in predictions:
        assert tuple(p.scores) == LABELS
        assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-9)
        assert p.label == max(p.scores, key=lambda lab: p.scores[lab])
        assert p.confidence == p.scores[p.label]


def test_tokens_in_counts_the_tokens_the_encoder_read(
    trained: EncoderModel, split: tuple[list[Example], list[Example]]
) -> None:
    examples = split[1][:5]
    predictions = run_sync(trained.classify(requests_for(examples)))
    tokenizer = trained._model().tokenizer
    for p, ex in zip(predictions, examples, strict=True):
        assert p.tokens_in == len(tokenizer(ex.text)["input_ids"])


def test_two_fits_with_the_same_seed_agree(split: tuple[list[Example], list[Example]]) -> None:
    models = [encoder(), encoder()]
    for model in models:
        fit(model, split[0][:100])
    requests = requests_for(split[1][:40])
    first, second = (run_sync(model.classify(requests)) for model in models)
    assert [p.label for p in first] == [p.label for p in second]
    for a, b in zip(first, second, strict=True):
        for label in LABELS:
            assert math.isclose(a.scores[label], b.scores[label], abs_tol=1e-6)


def test_a_batch_gives_the_answers_of_single_calls(
    trained: EncoderModel, split: tuple[list[Example], list[Example]]
) -> None:
    requests = requests_for(split[1][:16])
    batch = run_sync(trained.classify(requests))
    singles: list[Prediction] = [run_sync(trained.classify([r]))[0] for r in requests]
    assert [p.label for p in batch] == [p.label for p in singles]
    assert [p.tokens_in for p in batch] == [p.tokens_in for p in singles]
    for a, b in zip(batch, singles, strict=True):
        assert math.isclose(a.confidence or 0, b.confidence or 0, abs_tol=1e-4)


def test_a_label_without_training_examples_scores_zero(
    split: tuple[list[Example], list[Example]],
) -> None:
    model = encoder()
    labels = (*LABELS, "mixed")
    fit(model, split[0][:60], labels)
    predictions = run_sync(model.classify(requests_for(split[1][:5], labels)))
    for p in predictions:
        assert p.scores["mixed"] == 0.0
        assert p.label != "mixed"
        assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-9)


def test_training_on_a_single_label_is_a_data_error(
    split: tuple[list[Example], list[Example]],
) -> None:
    positives = [ex for ex in split[0] if ex.label == "positive"][:10]
    with pytest.raises(DataError, match=r"at least two labels .*raise train_size"):
        fit(encoder(), positives)


def test_training_labels_outside_the_label_set_are_a_data_error() -> None:
    with pytest.raises(DataError, match=r"not in the label set: 'mixed'"):
        encoder().fit(["a", "b"], ["positive", "mixed"], LABELS)


def test_classify_asks_for_the_labels_it_was_trained_on(
    trained: EncoderModel, split: tuple[list[Example], list[Example]]
) -> None:
    with pytest.raises(DataError, match="fit it again"):
        run_sync(trained.classify(requests_for(split[1][:1], ("yes", "no"))))


def test_classify_before_fit_says_so() -> None:
    with pytest.raises(RuntimeError, match=r"call fit\(\) before classify"):
        run_sync(encoder().classify(requests_for([Example("1", "text", "neutral")])))


def test_max_seq_length_truncates(split: tuple[list[Example], list[Example]]) -> None:
    model = encoder(max_seq_length=8)
    fit(model, split[0][:30])
    predictions = run_sync(model.classify(requests_for(split[1][:5])))
    assert all(p.tokens_in == 8 for p in predictions)  # every sentence there is longer
    assert model.info().context_length == 8


def test_max_seq_length_past_the_model_limit_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="512 positions"):
        encoder(max_seq_length=4096).load()


def test_the_bundled_model_loads_without_the_network(no_network: None) -> None:
    model = encoder()
    model.load()
    assert model.info().params is not None


def test_a_plain_hugging_face_folder_loads_offline(
    tmp_path: Path, split: tuple[list[Example], list[Example]], no_network: None
) -> None:
    # the bundled folder without its sentence-transformers files: a bare BERT checkpoint
    source = minilm_l6_dir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).symlink_to(source / name)
    (tmp_path / "vocab.txt").symlink_to(source / "vocab.txt")
    (tmp_path / "special_tokens_map.json").symlink_to(source / "special_tokens_map.json")
    model = encoder(str(tmp_path))
    model.check()
    fit(model, split[0][:40])
    predictions = run_sync(model.classify(requests_for(split[1][:3])))
    assert all(p.label in LABELS for p in predictions)
    assert model.info().path == str(tmp_path.resolve())


def test_info_reads_the_model() -> None:
    model = encoder()
    before = model.info()
    assert before.params is None
    assert before.context_length == 256
    model.load()
    info = model.info()
    assert info.params is not None and 20_000_000 < info.params < 25_000_000
    assert info.file_size_bytes == (minilm_l6_dir() / "model.safetensors").stat().st_size
    assert info.path == str(minilm_l6_dir().resolve())
    assert info.context_length == 256
    assert info.extra["embedding_dimension"] == 384


def test_fingerprint_follows_the_options() -> None:
    assert encoder().fingerprint() == encoder().fingerprint()
    assert encoder().fingerprint() != encoder(C=1.0).fingerprint()


def test_bundled_lists_minilm() -> None:
    [listed] = EncoderModel.bundled()
    assert listed.model_id == "encoder:minilm-l6"
    assert listed.installed


def test_unknown_option_is_a_spec_error() -> None:
    with pytest.raises(SpecError, match="batchsize"):
        registry.create("encoder:minilm-l6", {"batchsize": 8})


def test_missing_folder_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelNotFoundError, match="model folder not found"):
        encoder(str(missing)).check()


def test_a_folder_that_is_no_model_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"no config\.json or modules\.json"):
        encoder(str(tmp_path)).check()


def test_unknown_name_suggests_the_bundled_one() -> None:
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'minilm-l6'"):
        encoder("minilm-l7").check()


def test_an_uncached_hub_id_offline_says_so(
    monkeypatch: pytest.MonkeyPatch, no_network: None
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        encoder("rung-tests/no-such-encoder").load()


def test_an_uncached_hub_id_without_network_fails_fast(no_network: None) -> None:
    with pytest.raises(ModelLoadError, match="the hub cannot be reached"):
        encoder("rung-tests/no-such-encoder").load()


# -- tuned folders and embeddings -----------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain Hugging Face sequence classifier (no rung.json): MiniLM with a fresh head."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("hf-classifier")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        str(minilm_l6_dir()),
        num_labels=3,
        id2label=dict(enumerate(LABELS)),
        label2id={lab: i for i, lab in enumerate(LABELS)},
    )
    model.save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(minilm_l6_dir())).save_pretrained(str(folder))
    return folder


def test_a_frozen_encoder_trains_and_a_classifier_folder_does_not(
    classifier_folder: Path,
) -> None:
    assert encoder().needs_training is True
    assert encoder(str(classifier_folder)).needs_training is False
    assert encoder("minilm-l7").needs_training is True  # check() reports the bad name


def test_a_classifier_folder_answers_with_its_own_head(
    classifier_folder: Path, split: tuple[list[Example], list[Example]]
) -> None:
    model = encoder(str(classifier_folder), max_seq_length=32)
    model.check()
    model.fit([], [], list(reversed(LABELS)))
    predictions = run_sync(model.classify(requests_for(split[1][:6])))
    for p in predictions:
        assert tuple(p.scores) == LABELS and p.label in LABELS
        assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-12)
        assert 0 < p.tokens_in <= 32
    info = model.info()
    assert info.extra["tuned"] == {"method": "full", "base": None, "labels": list(LABELS)}
    assert info.extra["head"] == "sequence classifier" and info.context_length == 32
    with pytest.raises(DataError, match=r"fine-tuned on the labels negative, neutral, positive"):
        model.fit([], [], ["yes", "no"])
    with pytest.raises(DataError, match=r"task has the labels yes, no"):
        run_sync(model.classify(requests_for(split[1][:1], ("yes", "no"))))


def test_a_broken_model_card_is_a_load_error(classifier_folder: Path, tmp_path: Path) -> None:
    for item in classifier_folder.iterdir():
        (tmp_path / item.name).symlink_to(item)
    (tmp_path / "rung.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match=r"not a valid rung model card: unreadable JSON"):
        encoder(str(tmp_path)).check()
    (tmp_path / "rung.json").write_text('{"method": "setfit", "labels": ["a", "b"]}', "utf-8")
    with pytest.raises(ModelLoadError, match=r"has no head\.safetensors"):
        encoder(str(tmp_path)).check()


def test_embed_returns_the_sentence_embeddings(
    trained: EncoderModel, split: tuple[list[Example], list[Example]]
) -> None:
    texts = [ex.text for ex in split[1][:5]]
    embeddings = run_sync(trained.embed(texts))
    assert trained.can_embed
    assert embeddings.vectors.shape == (5, 384) and str(embeddings.vectors.dtype) == "float32"
    norms = (embeddings.vectors.astype("float64") ** 2).sum(axis=1) ** 0.5
    assert all(math.isclose(n, 1.0, abs_tol=1e-5) for n in norms)
    predictions = run_sync(trained.classify(requests_for(split[1][:5])))
    assert embeddings.tokens == [p.tokens_in for p in predictions]
    vectors, tokens = trained._embed_counting(texts)  # the interim serve/ still calls
    assert tokens == embeddings.tokens
    assert abs(vectors - embeddings.vectors).max() < 1e-6
    assert run_sync(trained.embed([])).tokens == []


def test_a_classifier_folder_embeds_by_mean_pooling(classifier_folder: Path) -> None:
    model = encoder(str(classifier_folder))
    embeddings = run_sync(model.embed(["Profit rose.", "Sales fell sharply in the quarter."]))
    assert embeddings.vectors.shape == (2, 384)
    assert embeddings.tokens[0] < embeddings.tokens[1]
    norms = (embeddings.vectors.astype("float64") ** 2).sum(axis=1) ** 0.5
    assert all(math.isclose(n, 1.0, abs_tol=1e-5) for n in norms)
