"""LoRA fine-tuning of the bundled SmolLM2-135M on real DialogSum dialogues (CPU, a few steps),
and the folder it writes served by the transformers backend."""

from __future__ import annotations

import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rung.errors import ConfigurationError, DataError, ModelLoadError, RunError
from rung.models import registry
from rung.models.base import ChatMessage, ClassifyRequest, GenerateRequest, run_sync
from rung.models.bundled import minilm_l6_dir, smollm2_135m_gguf
from rung.models.transformers import TransformersModel
from rung.tune.lm import (
    LoraOptions,
    LoraResult,
    NullLoraProgress,
    TrainExample,
    fit_lora,
    mean_loss,
    options_from,
    read_pairs,
    split_validation,
    tune_lora,
)
from rung.tune.lm.encoding import collate, encode

BASE = "transformers:smollm2-135m-instruct"
SYSTEM = "Summarize the dialogue in one or two sentences."
#: 6 training + 2 validation examples, ~100 tokens each: 4 steps of 3 in two epochs
OPTIONS = LoraOptions(max_length=128, batch_size=3, epochs=2, lr=2e-3, seed=0, threads=1)
N_TRAIN = 6


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One PyTorch thread: on a machine busy with other work, two threads wait on each other
    (OpenMP spins) and a training step takes several times longer than with one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def phase(self, text: str) -> None:
        self.events.append(("phase", text))

    def start(self, total_steps: int) -> None:
        self.events.append(("start", total_steps))

    def step(self, loss: float) -> None:
        self.events.append(("step", loss))

    def evaluated(self, epoch: float, val_loss: float) -> None:
        self.events.append(("evaluated", (epoch, val_loss)))

    def done(self) -> None:
        self.events.append(("done", None))

    def of(self, kind: str) -> list[Any]:
        return [value for k, value in self.events if k == kind]


@pytest.fixture(scope="module")
def dialogues(shared_data: Path) -> list[TrainExample]:
    """The eight shortest dialogues of DialogSum's dev split, with their reference summaries."""
    path = shared_data / "dialogsum" / "dialogsum.dev.jsonl"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    rows.sort(key=lambda r: (len(r["dialogue"]), r["fname"]))
    return [TrainExample.of(r["dialogue"], r["summary"], system=SYSTEM) for r in rows[:8]]


@pytest.fixture(scope="module")
def tuned(
    tmp_path_factory: pytest.TempPathFactory, dialogues: list[TrainExample]
) -> tuple[LoraResult, Recorder]:
    out = tmp_path_factory.mktemp("lora") / "summarizer"
    recorder = Recorder()
    started = time.perf_counter()
    result = tune_lora(
        BASE,
        dialogues[:N_TRAIN],
        out,
        OPTIONS,
        val=dialogues[N_TRAIN:],
        data_info={"path": "dialogsum.dev.jsonl (8 shortest)"},
        progress=recorder,
    )
    print(
        f"\nLoRA on SmolLM2-135M, {N_TRAIN} DialogSum examples, {result.steps} steps: loss "
        f"{result.train_loss_before:.3f} -> {result.train_loss_after:.3f} (validation "
        f"{result.validation_loss_before:.3f} -> {result.validation_loss:.3f}); "
        f"{result.train_seconds:.1f} s training, {time.perf_counter() - started:.1f} s in all"
    )
    return result, recorder


@pytest.fixture(scope="module")
def served(tuned: tuple[LoraResult, Recorder]) -> Iterator[TransformersModel]:
    model = registry.create(f"transformers:{tuned[0].out}", {"threads": 1})
    assert isinstance(model, TransformersModel)
    model.check()
    model.load()
    yield model
    model.close()


@pytest.fixture(scope="module")
def tokenizer(tuned: tuple[LoraResult, Recorder]) -> Any:
    """The tokenizer saved in the folder (SmolLM2's, with its chat template); loads in ms."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tuned[0].out))


# --- a real run -------------------------------------------------------------------------------


@pytest.mark.slow
def test_training_lowers_the_loss(tuned: tuple[LoraResult, Recorder]) -> None:
    result, recorder = tuned
    assert result.steps == 4 and result.epochs == 2.0 and not result.stopped_early
    # Measured without dropout on the training examples, before the first step and after
    # the last: a real drop, not noise.
    assert result.train_loss_after < result.train_loss_before - 0.3
    assert result.validation_loss_before is not None and result.validation_loss is not None
    assert result.validation_loss < result.validation_loss_before - 0.1
    assert recorder.of("start") == [4]
    assert len(recorder.of("step")) == 4
    assert [epoch for epoch, _ in recorder.of("evaluated")] == [1.0, 2.0]
    assert recorder.of("done") == [None]
    assert recorder.of("phase")[0] == f"loading {BASE}"
    assert [h["step"] for h in result.history] == [2, 4]


def test_folder_and_cards(tuned: tuple[LoraResult, Recorder]) -> None:
    result, _ = tuned
    out = result.out
    names = {p.name for p in out.iterdir()}
    assert {
        "adapter_config.json",
        "adapter_model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "rung.json",
        "README.md",
    } <= names
    assert "merged" not in names  # the adapter alone by default
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~_umask()  # not mkdtemp's 0700

    card = json.loads((out / "rung.json").read_text())
    assert card["format"] == 1 and card["kind"] == "causal-lm" and card["method"] == "lora"
    assert card["base"] == BASE
    assert card["base_source"] == {"kind": "gguf", "path": str(smollm2_135m_gguf().resolve())}
    assert card["prompt"] == {"template": "chat", "system": SYSTEM}
    assert card["hyperparameters"]["rank"] == 8
    assert card["hyperparameters"]["target_modules"] == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert card["data"]["n_train"] == N_TRAIN and card["data"]["n_validation"] == 2
    assert card["train_loss_after"] == pytest.approx(result.train_loss_after, abs=1e-4)
    assert card["validation_loss"] == pytest.approx(result.validation_loss, abs=1e-4)
    assert card["train_seconds"] > 0 and card["rung_version"]
    assert card["files"] == {"adapter": "adapter_model.safetensors", "merged": None, "gguf": None}

    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(smollm2_135m_gguf().resolve())
    assert adapter["r"] == 8 and adapter["lora_alpha"] == 16

    readme = (out / "README.md").read_text()
    assert readme.startswith("---\nbase_model: ")
    assert "library_name: peft" in readme
    assert f"{card['train_loss_after']:.3f}" in readme
    assert "transformers:<path to summarizer>" in readme


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@pytest.mark.slow
def test_served_adapter_reproduces_the_trained_loss(
    served: TransformersModel, tuned: tuple[LoraResult, Recorder], dialogues: list[TrainExample]
) -> None:
    """Base + saved adapter, merged at load, scores the validation examples exactly as the
    kept adapter did in training: what was saved is what was trained (and kept)."""
    model, tok = served.pretrained()
    encoded = [encode(tok, e, OPTIONS.max_length, BASE) for e in dialogues[N_TRAIN:]]
    loss = mean_loss(model, encoded, 4, tok.pad_token_id, "cpu")
    assert loss == pytest.approx(tuned[0].validation_loss, abs=2e-3)


@pytest.mark.slow
def test_served_adapter_generates_and_classifies(
    served: TransformersModel, tuned: tuple[LoraResult, Recorder], shared_data: Path
) -> None:
    line = (shared_data / "dialogsum" / "dialogsum.test.jsonl").read_text().splitlines()[0]
    dialogue = json.loads(line)["dialogue"][:500]
    messages = (ChatMessage("system", SYSTEM), ChatMessage("user", dialogue))
    out = run_sync(served.generate(GenerateRequest(messages=messages, max_tokens=24)))
    print(f"\ntuned summary: {out.text!r}")
    assert out.text.strip()
    assert 0 < out.tokens_out <= 24

    labels = ("office", "restaurant", "hospital")
    (p,) = run_sync(served.classify([ClassifyRequest(dialogue, labels, messages)]))
    assert set(p.scores) == set(labels)
    assert sum(p.scores.values()) == pytest.approx(1.0)

    info = served.info()
    assert info.path == str(tuned[0].out)
    assert info.extra["source"] == "adapter"
    assert info.extra["base"] == "smollm2-135m-instruct"
    assert info.extra["method"] == "lora"
    assert info.params is not None and 100_000_000 < info.params < 200_000_000
    assert info.file_size_bytes is not None
    assert info.file_size_bytes > smollm2_135m_gguf().stat().st_size
    base = registry.create(BASE, {"threads": 1})
    assert served.fingerprint() != base.fingerprint()


@pytest.mark.slow
def test_same_seed_same_run(served: TransformersModel, dialogues: list[TrainExample]) -> None:
    """The seeded part of a run (adapter init, dropout, order, steps), twice on one loaded
    model with the same seed: the same losses and weights; another seed: other weights.
    (Loading is deterministic dequantization; it is left out to keep the test short.)"""
    model, tok = served.pretrained()
    tiny = LoraOptions(max_length=64, batch_size=2, max_steps=2, lr=1e-3, dropout=0.1, seed=7)
    encoded = [encode(tok, e, tiny.max_length, BASE) for e in dialogues[:3]]

    def run(seed: int) -> tuple[float, dict[str, Any]]:
        options = tiny.model_copy(update={"seed": seed})
        fitted = fit_lora(
            model, encoded, [], options, tok.pad_token_id, "cpu", NullLoraProgress(), BASE
        )
        weights = {
            n: p.detach().clone() for n, p in fitted.model.named_parameters() if "lora_" in n
        }
        fitted.model.unload()  # the served model gets its own layers back
        assert fitted.loss_after != fitted.loss_before
        return fitted.loss_after, weights

    try:
        first, again, other = run(7), run(7), run(8)
    finally:
        model.eval()
    assert first[0] == again[0]
    assert first[1].keys() == again[1].keys() and len(first[1]) == 4 * 2 * 30
    assert all((first[1][k] == again[1][k]).all() for k in first[1])
    assert any((first[1][k] != other[1][k]).any() for k in first[1])


# --- encoding (the saved tokenizer, no model) --------------------------------------------------


def test_loss_is_on_the_completion_only(tokenizer: Any, dialogues: list[TrainExample]) -> None:
    example = dialogues[0]
    encoded = encode(tokenizer, example, 512, BASE)
    assert not encoded.truncated
    batch = collate([encoded, encode(tokenizer, dialogues[1], 512, BASE)], 2, "cpu")
    labels = batch["labels"][0].tolist()
    n = encoded.n_prompt
    assert labels[:n] == [-100] * n
    assert labels[n : len(encoded.ids)] == encoded.ids[n:]
    prompt = tokenizer.decode(encoded.ids[:n])
    assert prompt.startswith("<|im_start|>system\n" + SYSTEM)
    assert prompt.endswith("<|im_start|>assistant\n")
    # The completion ends with the template's end of turn: the model learns to stop.
    assert tokenizer.decode(encoded.ids[n:]) == example.completion + "<|im_end|>\n"
    # Padding is masked out of the loss and the attention.
    pad = len(batch["labels"][0]) - len(encoded.ids)
    if pad:
        assert labels[-pad:] == [-100] * pad
        assert batch["attention_mask"][0].tolist()[-pad:] == [0] * pad


def test_long_examples_are_cut_in_the_input(tokenizer: Any, shared_data: Path) -> None:
    rows = (shared_data / "dialogsum" / "dialogsum.dev.jsonl").read_text().splitlines()
    longest = max((json.loads(r) for r in rows), key=lambda r: len(r["dialogue"]))
    example = TrainExample.of(longest["dialogue"], longest["summary"], system=SYSTEM)
    for limit in (64, 128, 256):
        encoded = encode(tokenizer, example, limit, BASE)
        assert encoded.truncated and len(encoded.ids) <= limit
        prompt = tokenizer.decode(encoded.ids[: encoded.n_prompt])
        assert prompt.startswith("<|im_start|>system\n" + SYSTEM)  # the markup is intact
        assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
        completion = tokenizer.decode(encoded.ids[encoded.n_prompt :])
        assert longest["summary"].startswith(completion.strip()[:40])
        assert len(encoded.ids) - encoded.n_prompt >= min(limit // 2, 60)


def test_plain_format_without_a_chat_template(
    tokenizer: Any, dialogues: list[TrainExample]
) -> None:
    template = tokenizer.chat_template
    tokenizer.chat_template = None
    try:
        encoded = encode(tokenizer, dialogues[0], 512, BASE)
    finally:
        tokenizer.chat_template = template
    assert tokenizer.decode(encoded.ids[: encoded.n_prompt]).endswith("\nAnswer:")
    completion = tokenizer.decode(encoded.ids[encoded.n_prompt :])
    assert completion == " " + dialogues[0].completion + tokenizer.eos_token


# --- data --------------------------------------------------------------------------------------


def test_read_pairs_jsonl_csv_and_messages(tmp_path: Path) -> None:
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(
        json.dumps({"q": "2+2?", "a": "4"})
        + "\n"
        + json.dumps({"q": [{"role": "user", "content": "Hi"}], "a": "Hello!"})
        + "\n"
        + json.dumps({"q": "empty answer", "a": ""})
        + "\n",
        encoding="utf-8",
    )
    data = read_pairs(jsonl, input_field="q", output_field="a", system="Be brief.")
    assert data.skipped == 1
    assert [e.completion for e in data.examples] == ["4", "Hello!"]
    assert data.examples[1].messages == (
        ChatMessage("system", "Be brief."),
        ChatMessage("user", "Hi"),
    )
    assert data.info("q", "a")["sha256"]

    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text('dialogue,summary\n"A: hi\nB: bye",They part.\n', encoding="utf-8")
    (example,) = read_pairs(csv_file, input_field="dialogue", output_field="summary").examples
    assert example.messages == (ChatMessage("user", "A: hi\nB: bye"),)


def test_read_pairs_errors(tmp_path: Path) -> None:
    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text(json.dumps({"dialogue": "x", "summary": "y"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"no field 'dialog'.*did you mean 'dialogue'.*--input"):
        read_pairs(jsonl, input_field="dialog", output_field="summary")
    with pytest.raises(DataError, match=r"--output"):
        read_pairs(jsonl, input_field="dialogue", output_field="summ")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(DataError, match="no training pairs"):
        read_pairs(empty)
    text = tmp_path / "pairs.txt"
    text.write_text("a@b\n", encoding="utf-8")
    with pytest.raises(DataError, match="JSONL, CSV or TSV"):
        read_pairs(text)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": [{"role": "robot", "content": "x"}], "completion": "y"}\n')
    with pytest.raises(DataError, match="chat messages"):
        read_pairs(bad)


def test_split_validation_is_seeded(dialogues: list[TrainExample]) -> None:
    train, val = split_validation(dialogues, 0.25, seed=1)
    assert len(train) == 6 and len(val) == 2
    assert split_validation(dialogues, 0.2, seed=1) == (train, val)
    assert len(split_validation(dialogues, 3, seed=1)[1]) == 3
    assert len(split_validation(dialogues[:1], 0.5, seed=1)[0]) == 1  # never empties training


def test_options_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="rank"):
        options_from({"rank": 0})
    with pytest.raises(ConfigurationError, match="unknown field 'bogus'"):
        options_from({"bogus": 1})
    with pytest.raises(ConfigurationError, match="at least one module"):
        options_from({"target_modules": [" "]})
    assert options_from({"target_modules": "all-linear"}).target_modules == "all-linear"


# --- refusals before any model is loaded -------------------------------------------------------


def test_refusals_before_loading(
    tmp_path: Path, dialogues: list[TrainExample], tuned: tuple[LoraResult, Recorder]
) -> None:
    pairs = dialogues[:2]
    started = time.perf_counter()
    with pytest.raises(RunError, match="already holds a model"):
        tune_lora(BASE, pairs, tuned[0].out, OPTIONS)
    with pytest.raises(DataError, match="no training examples"):
        tune_lora(BASE, [], tmp_path / "a", OPTIONS)
    with pytest.raises(ConfigurationError, match="runs through transformers"):
        tune_lora("llamacpp:smollm2-135m-instruct", pairs, tmp_path / "b", OPTIONS)
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        tune_lora(f"transformers:{minilm_l6_dir()}", pairs, tmp_path / "c", OPTIONS)
    with pytest.raises(ConfigurationError, match="is a LoRA adapter folder"):
        tune_lora(f"transformers:{tuned[0].out}", pairs, tmp_path / "d", OPTIONS)
    hf_folder = tmp_path / "hf-llama"
    hf_folder.mkdir()
    (hf_folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ConfigurationError, match="GGUF export needs a base that is a GGUF"):
        tune_lora(f"transformers:{hf_folder}", pairs, tmp_path / "e", OPTIONS, gguf="f16")
    assert time.perf_counter() - started < 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf-llama"]
