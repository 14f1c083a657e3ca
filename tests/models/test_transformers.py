"""The transformers backend on the bundled SmolLM2-135M GGUF, loaded through transformers' own
GGUF support (dequantized to float32), classifying real financial phrasebank sentences."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rung.errors import ConfigurationError, ModelLoadError, ModelNotFoundError, SpecError
from rung.models import registry
from rung.models.base import ChatMessage, ClassifyRequest, GenerateRequest, Prediction, run_sync
from rung.models.bundled import smollm2_135m_gguf
from rung.models.transformers import (
    TransformersModel,
    label_distribution,
    resolve_source,
)
from rung.tasks.classify import ClassifyTask, DataSource, TaskData, build_requests
from rung.tasks.data import Example, read_examples

LABELS = ("negative", "neutral", "positive")
ALIAS = "transformers:smollm2-135m-instruct"


def make(model_id: str, **options: Any) -> TransformersModel:
    model = registry.create(model_id, options)
    assert isinstance(model, TransformersModel)
    return model


@pytest.fixture(scope="module")
def smollm2() -> Iterator[TransformersModel]:
    """Loaded once for the module: dequantizing the GGUF takes most of this file's time."""
    model = make(ALIAS, threads=1)
    model.check()
    model.load()
    yield model
    model.close()


@pytest.fixture(scope="module")
def fpb_picked(fpb_path: Path) -> list[Example]:
    """Eight sentences: the file's first three negative, two neutral and three positive."""
    examples = read_examples(fpb_path)
    picked: list[Example] = []
    for label in LABELS:
        picked += [ex for ex in examples if ex.label == label][: 2 if label == "neutral" else 3]
    return picked


@pytest.fixture(scope="module")
def fpb_predictions(
    smollm2: TransformersModel, fpb_picked: list[Example], fpb_path: Path
) -> list[Prediction]:
    task = ClassifyTask(data=DataSource(path=fpb_path), labels=list(LABELS))
    requests = build_requests(task, TaskData(train=[], test=fpb_picked, labels=LABELS))
    start = time.perf_counter()
    predictions = run_sync(smollm2.classify(requests))
    per_example = (time.perf_counter() - start) / len(requests)
    print(f"\ntransformers classify: {per_example:.3f} s per example (SmolLM2-135M, float32, CPU)")
    return predictions


# --- the real model ---------------------------------------------------------------------------


def test_bundled_alias_is_listed() -> None:
    listed = {b.model_id: b for b in registry.bundled_models()}
    assert listed[ALIAS].installed
    assert listed[ALIAS].install is None


def test_classify_financial_phrasebank(
    fpb_predictions: list[Prediction], fpb_picked: list[Example]
) -> None:
    assert len(fpb_predictions) == len(fpb_picked) == 8
    for p in fpb_predictions:
        assert set(p.scores) == set(LABELS)
        assert sum(p.scores.values()) == pytest.approx(1.0)
        assert all(0.0 <= s <= 1.0 for s in p.scores.values())
        assert p.label == max(p.scores, key=p.scores.__getitem__)
        assert p.confidence == p.scores[p.label]
        assert p.raw == p.label
        assert p.tokens_in > 20  # the system prompt alone is longer
        assert p.tokens_out == 1  # each label is one token in SmolLM2's vocabulary


def test_positive_and_negative_sentences_are_told_apart(
    fpb_predictions: list[Prediction], fpb_picked: list[Example]
) -> None:
    # SmolLM2-135M is weak at this task zero-shot; all that is asked of it here is that the
    # scores depend on the text, which a broken prompt or a scoring bug (e.g. reading the
    # logits of the wrong position) would not give.
    negative = fpb_predictions[[ex.label for ex in fpb_picked].index("negative")]
    positive = fpb_predictions[[ex.label for ex in fpb_picked].index("positive")]
    distance = max(abs(negative.scores[lab] - positive.scores[lab]) for lab in LABELS)
    assert negative.label != positive.label or distance > 1e-3


def test_multi_token_labels_match_a_plain_forward_pass(
    smollm2: TransformersModel, fpb_picked: list[Example]
) -> None:
    """Labels of several tokens go through the cached, batched continuation and the reuse of
    the previous prompt's prefix; the scores must equal those of running each full
    prompt+label sequence through the model on its own."""
    import torch

    labels = ("bad news", "no news at all", "good news")
    requests = [
        ClassifyRequest(
            text=ex.text,
            labels=labels,
            messages=(
                ChatMessage("system", f"Is this {', '.join(labels)}? Answer with one of them."),
                ChatMessage("user", ex.text),
            ),
        )
        for ex in fpb_picked[:2]
    ]
    predictions = run_sync(smollm2.classify(requests))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the model's own calls: steady on a busy 2-core machine
    try:
        _compare_with_full_passes(smollm2, requests, predictions)
    finally:
        torch.set_num_threads(threads)


def _compare_with_full_passes(
    smollm2: TransformersModel, requests: list[ClassifyRequest], predictions: list[Prediction]
) -> None:
    import torch

    for request, p in zip(requests, predictions, strict=True):
        assert sum(p.scores.values()) == pytest.approx(1.0)
        labels = request.labels
        prompt = smollm2._render(request.messages)
        reference: dict[str, float] = {}
        for label in labels:
            ids = prompt.continuation(label)
            full = torch.tensor([prompt.ids + ids], device=smollm2.info().extra["device"])
            with torch.inference_mode():
                logp = torch.log_softmax(smollm2._model(input_ids=full).logits[0].float(), -1)
            n = len(prompt.ids)
            reference[label] = sum(float(logp[n - 1 + j, t]) for j, t in enumerate(ids))
        expected = label_distribution(reference)
        for label in labels:
            assert p.scores[label] == pytest.approx(expected[label], abs=1e-4)
        assert p.tokens_out == len(prompt.continuation(str(p.label))) > 1


def test_tokenizer_without_chat_template_gets_a_plain_prompt(
    smollm2: TransformersModel, fpb_path: Path
) -> None:
    """Base models ship no chat template: the prompt becomes plain text ending in 'Answer:'
    and the labels are scored with a leading space."""
    task = ClassifyTask(data=DataSource(path=fpb_path), labels=list(LABELS))
    example = Example(
        id="0", text="Operating profit fell to EUR 3 mn from EUR 9 mn .", label="negative"
    )
    request = build_requests(task, TaskData(train=[], test=[example], labels=LABELS))[0]
    template = smollm2._tokenizer.chat_template
    smollm2._tokenizer.chat_template = None
    try:
        assert smollm2._render(request.messages).text.endswith("\nAnswer:")
        (p,) = run_sync(smollm2.classify([request]))
    finally:
        smollm2._tokenizer.chat_template = template
    assert sum(p.scores.values()) == pytest.approx(1.0)
    assert p.label == max(p.scores, key=p.scores.__getitem__)
    assert p.tokens_out >= 1


def test_generate(smollm2: TransformersModel) -> None:
    request = GenerateRequest(
        messages=(ChatMessage("user", "What is the capital of France?"),), max_tokens=24
    )
    out = run_sync(smollm2.generate(request))
    assert out.text.strip()
    assert 0 < out.tokens_out <= 24
    assert out.tokens_in > 5
    assert out.finish_reason in ("stop", "length")

    counting = GenerateRequest(
        messages=(ChatMessage("user", "Count from 1 to 10, one number per line."),),
        max_tokens=40,
        stop=("5",),
    )
    cut = run_sync(smollm2.generate(counting))
    assert "5" not in cut.text


def test_info_and_fingerprint(smollm2: TransformersModel) -> None:
    info = smollm2.info()
    path = smollm2_135m_gguf()
    assert info.path == str(path)
    assert info.file_size_bytes == path.stat().st_size
    assert info.params is not None and 100_000_000 < info.params < 200_000_000
    assert info.context_length == 8192
    assert info.quantization is not None
    assert info.quantization.startswith("dequantized from Q4_1 to ")  # float32 on CPU
    assert info.extra["device"] in ("cpu", "cuda")

    same = make(ALIAS, threads=1)
    assert same.fingerprint() == smollm2.fingerprint()
    assert make(ALIAS, dtype="bfloat16").fingerprint() != smollm2.fingerprint()


# --- bad inputs (no model load) ---------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="no GGUF file"):
        make(f"transformers:{tmp_path / 'absent.gguf'}").check()
    with pytest.raises(ModelLoadError, match="no file or folder"):
        make(f"transformers:{tmp_path / 'absent-folder'}").check()


def test_bad_magic_gguf(tmp_path: Path) -> None:
    fake = tmp_path / "model.gguf"
    fake.write_bytes(b"<html>not found</html>")
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        make(f"transformers:{fake}").check()


def test_folder_without_config_and_fingerprint_of_folder(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        make(f"transformers:{folder}").check()
    (folder / "config.json").write_text('{"max_position_embeddings": 2048}', encoding="utf-8")
    (folder / "model.safetensors").write_bytes(b"0" * 10)
    model = make(f"transformers:{folder}")
    model.check()
    assert model.info().file_size_bytes == 10
    assert model.info().context_length == 2048
    before = model.fingerprint()
    (folder / "model.safetensors").write_bytes(b"0" * 11)
    assert make(f"transformers:{folder}").fingerprint() != before


def test_unknown_alias_suggests_the_bundled_one() -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean 'smollm2-135m-instruct'"):
        make("transformers:smollm2-135m-instruc").check()


def test_uncached_hub_id_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_source("HuggingFaceTB/SmolLM2-135M-Instruct").kind == "hub"
    model = make("transformers:rung-tests/no-such-model")
    with pytest.raises(ModelLoadError, match="not in the local Hugging Face cache"):
        model.check()
    with pytest.raises(ModelLoadError, match="hf download rung-tests/no-such-model"):
        model.load()


def test_options_are_validated() -> None:
    for bad in ({"dtype": "int8"}, {"device": "tpu"}, {"threads": 0}, {"bogus": 1}):
        with pytest.raises(SpecError):
            make(ALIAS, **bad)


def test_cuda_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ConfigurationError, match="no CUDA GPU"):
        make(ALIAS, device="cuda").check()


def test_label_distribution_is_a_softmax() -> None:
    scores = label_distribution({"a": -1.0, "b": -2.0, "c": -1000.0})
    assert sum(scores.values()) == pytest.approx(1.0)
    assert scores["a"] / scores["b"] == pytest.approx(math.e)
    assert scores["c"] == pytest.approx(0.0)


# --- LoRA adapter folders (no model load) -----------------------------------------------------


def _adapter_folder(folder: Path, base: str, card_base: str | None = None) -> Path:
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(
        f'{{"peft_type": "LORA", "r": 8, "lora_alpha": 16, "base_model_name_or_path": "{base}"}}',
        encoding="utf-8",
    )
    (folder / "adapter_model.safetensors").write_bytes(b"0" * 100)
    if card_base is not None:
        (folder / "rung.json").write_text(f'{{"base": "{card_base}"}}', encoding="utf-8")
    return folder


def test_adapter_folder_names_its_base(tmp_path: Path) -> None:
    gguf = smollm2_135m_gguf()
    bare = _adapter_folder(tmp_path / "peft", str(gguf))
    src = resolve_source(str(bare))
    assert src.kind == "adapter" and src.merged is None
    assert src.base is not None and src.base.kind == "gguf" and src.base.path == gguf
    # rung.json's model id wins over adapter_config.json's path: the alias resolves anywhere.
    carded = _adapter_folder(tmp_path / "rung", "/elsewhere/model.gguf", ALIAS)
    model = make(f"transformers:{carded}")
    model.check()
    info = model.info()
    assert info.path == str(carded)
    assert info.extra == {
        "source": "adapter",
        "adapter": str(carded),
        "base": "smollm2-135m-instruct",
        "method": "lora",
    }
    assert info.file_size_bytes == gguf.stat().st_size + 100
    before = model.fingerprint()
    assert before != make(ALIAS).fingerprint()
    (carded / "adapter_model.safetensors").write_bytes(b"1" * 101)
    assert make(f"transformers:{carded}").fingerprint() != before


def test_adapter_whose_base_is_gone(tmp_path: Path) -> None:
    folder = _adapter_folder(tmp_path / "lora", str(tmp_path / "gone.gguf"))
    with pytest.raises(ModelLoadError, match=r"trained on .*gone\.gguf.*cannot be loaded here"):
        make(f"transformers:{folder}").check()
    card = _adapter_folder(tmp_path / "carded", "x", "transformers:no-such-alias")
    with pytest.raises(ModelLoadError, match="'no-such-alias', which cannot be found here"):
        make(f"transformers:{card}").check()
    # merged weights stand alone: the base is not needed then
    for adapter in (folder, card):
        (adapter / "merged").mkdir()
        (adapter / "merged" / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
        assert resolve_source(str(adapter)).merged == adapter / "merged"
        make(f"transformers:{adapter}").check()
    assert resolve_source(str(card)).base is None


def test_stacked_or_damaged_adapters(tmp_path: Path) -> None:
    first = _adapter_folder(tmp_path / "first", str(smollm2_135m_gguf()))
    second = _adapter_folder(tmp_path / "second", str(first))
    with pytest.raises(ModelLoadError, match="stacked adapters are not supported"):
        resolve_source(str(second))
    broken = _adapter_folder(tmp_path / "broken", str(smollm2_135m_gguf()))
    (broken / "rung.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="damaged"):
        resolve_source(str(broken))


def test_folder_of_an_encoder_is_not_a_causal_lm(tmp_path: Path) -> None:
    folder = tmp_path / "bert"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["BertForSequenceClassification"]}')
    with pytest.raises(ModelLoadError, match=r"not a causal language model.*encoder:"):
        make(f"transformers:{folder}").check()
