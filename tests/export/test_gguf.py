"""GGUF export of a LoRA folder: the exported file, run by llama.cpp, must answer as the merged
model does in transformers.

The adapter here is not trained: its A and B matrices are random, so every row of every
attention projection of every layer moves (a trained adapter of a few steps moves them little,
and a wrong permutation of q/k would hide in the noise). It is written as a bare peft folder
(adapter_config.json + adapter_model.safetensors, no rung.json, no tokenizer), which also covers
the transformers backend on adapters not made by rung."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rung.errors import ConfigurationError, ModelLoadError, RunError
from rung.export import gguf as gguf_export
from rung.export.gguf import check_exportable, export_gguf
from rung.models import registry
from rung.models.base import ChatMessage, GenerateRequest, run_sync
from rung.models.bundled import smollm2_135m_gguf
from rung.models.transformers import TransformersModel, resolve_source

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
RANK = 8
GREEDY = 8
#: logits of llama.cpp (f16 weights) and transformers (float32) agree within this
F16_TOLERANCE = 0.25


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """One PyTorch thread: on a machine busy with other work, two threads wait on each other
    (OpenMP spins) and a training step takes several times longer than with one."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def write_random_adapter(folder: Path, base: Path, seed: int = 0, std: float = 0.05) -> None:
    """A peft LoRA folder for the bundled SmolLM2 (30 layers, 9 query and 3 key/value heads of
    64), with random A and B."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    dims = {"q_proj": 576, "k_proj": 192, "v_proj": 192, "o_proj": 576}
    tensors = {}
    for layer in range(30):
        for proj in TARGETS:
            key = f"base_model.model.model.layers.{layer}.self_attn.{proj}"
            tensors[f"{key}.lora_A.weight"] = rng.normal(0, std, (RANK, 576)).astype(np.float32)
            tensors[f"{key}.lora_B.weight"] = rng.normal(0, std, (dims[proj], RANK)).astype(
                np.float32
            )
    folder.mkdir(parents=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    config = {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "r": RANK,
        "lora_alpha": 16,
        "lora_dropout": 0.0,
        "bias": "none",
        "fan_in_fan_out": False,
        "target_modules": list(TARGETS),
        "base_model_name_or_path": str(base),
    }
    (folder / "adapter_config.json").write_text(json.dumps(config), encoding="utf-8")


@pytest.fixture(scope="module")
def adapter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gguf") / "random-lora"
    write_random_adapter(folder, smollm2_135m_gguf())
    return folder


@pytest.fixture(scope="module")
def merged(adapter: Path) -> Iterator[TransformersModel]:
    """The adapter merged into the base by peft, in the transformers backend: the reference."""
    model = registry.create(f"transformers:{adapter}", {"threads": 1})
    assert isinstance(model, TransformersModel)
    model.load()
    yield model
    model.close()


@pytest.fixture(scope="module")
def exported(adapter: Path) -> Path:
    return export_gguf(adapter, outtype="f16").path


PROMPTS = (
    "What is the capital of France?",
    "#Person1#: Hi, I'd like to book a table for two tonight.\n#Person2#: Sure, at what time?",
    "Write one sentence about the sea.",
)


def _prompt_ids(model: TransformersModel, text: str) -> list[int]:
    return model._render((ChatMessage("user", text),)).ids


def _hf_greedy(model: TransformersModel, ids: list[int]) -> tuple[list[int], np.ndarray]:
    """The first GREEDY argmax tokens after ``ids``, and the logits of the first."""
    import torch

    from rung.models.transformers.scoring import Scorer

    hf, _ = model.pretrained()
    cache_arg = Scorer(hf, "cpu").cache_arg
    out: list[int] = []
    first = None
    step = torch.tensor([ids])
    cache = None
    with torch.inference_mode():
        for _ in range(GREEDY):
            kwargs = {cache_arg: cache} if cache is not None else {}
            result = hf(input_ids=step, use_cache=True, **kwargs)
            cache = result[cache_arg]
            logits = result.logits[0, -1].float().numpy()
            first = logits if first is None else first
            out.append(int(logits.argmax()))
            step = torch.tensor([[out[-1]]])
    assert first is not None
    return out, first


@pytest.fixture(scope="module")
def reference(merged: TransformersModel) -> dict[str, tuple[list[int], list[int], np.ndarray]]:
    """Per prompt: its ids, and the merged model's greedy tokens and first logits."""
    found = {}
    for text in PROMPTS:
        ids = _prompt_ids(merged, text)
        found[text] = (ids, *_hf_greedy(merged, ids))
    return found


def _llama(path: Path) -> Any:
    from rung.models.llamacpp import open_llama

    return open_llama(path, n_threads=1, n_ctx=256, logits_all=True, verbose=False)


def _llama_first(llm: Any, ids: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(ids)
    return np.array(llm.scores[llm.n_tokens - 1])


def _llama_greedy(llm: Any, ids: list[int]) -> tuple[list[int], np.ndarray]:
    llm.reset()
    llm.eval(ids)
    first = np.array(llm.scores[llm.n_tokens - 1])
    out: list[int] = []
    for _ in range(GREEDY):
        nxt = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(nxt)
        llm.eval([nxt])
    return out, first


@pytest.mark.slow
def test_f16_export_answers_as_the_merged_model(
    merged: TransformersModel, reference: dict[str, Any], exported: Path, adapter: Path
) -> None:
    assert exported == adapter / "model-f16.gguf"
    llm = _llama(exported)
    base = _llama(smollm2_135m_gguf())
    for text in PROMPTS:
        ids, hf_tokens, hf_logits = reference[text]
        # Both read the same vocabulary: the GGUF's tokenizer is the base's, copied.
        rendered = merged._render((ChatMessage("user", text),)).text
        assert llm.tokenize(rendered.encode(), add_bos=False, special=True) == ids
        cpp_tokens, cpp_logits = _llama_greedy(llm, ids)
        assert cpp_tokens == hf_tokens, merged._tokenizer.decode(hf_tokens)
        assert float(np.abs(cpp_logits - hf_logits).max()) < F16_TOLERANCE
        # ...and the adapter does change the answers: the base's logits are far off.
        base_logits = _llama_first(base, ids)
        assert float(np.abs(base_logits - hf_logits).max()) > 10 * F16_TOLERANCE


@pytest.mark.slow
def test_without_the_qk_permutation_the_export_is_wrong(
    reference: dict[str, Any], adapter: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the permutation is for: unpermuted q/k deltas give an attention llama.cpp reads
    differently from the one transformers trained."""
    monkeypatch.setattr(gguf_export, "_permute", lambda w, n_head, n_head_kv: w)
    wrong = export_gguf(adapter, tmp_path / "unpermuted.gguf").path
    ids, _, hf_logits = reference[PROMPTS[0]]
    cpp_logits = _llama_first(_llama(wrong), ids)
    assert float(np.abs(cpp_logits - hf_logits).max()) > 4 * F16_TOLERANCE


@pytest.mark.slow
def test_q8_0_export_and_the_llamacpp_backend(adapter: Path, merged: TransformersModel) -> None:
    result = export_gguf(adapter, adapter / "q8.gguf", outtype="q8_0")
    assert result.adapted == 30 * len(TARGETS)
    assert result.tensors == 272  # the base's, same names, same order
    f16 = adapter / "model-f16.gguf"
    if f16.exists():
        assert result.size_bytes < 0.6 * f16.stat().st_size
    from rung.catalog.gguf_meta import read_gguf

    facts = read_gguf(result.path)
    assert facts.architecture == "llama"
    assert facts.file_type == "Q8_0"
    assert facts.context_length == 8192
    # Usable as a rung: the llamacpp backend loads it and, greedy, starts as the merged model.
    rung = registry.create(f"llamacpp:{result.path}", {"n_threads": 1, "n_ctx": 512})
    rung.check()
    rung.load()
    try:
        request = GenerateRequest(messages=(ChatMessage("user", PROMPTS[0]),), max_tokens=8)
        answer = run_sync(rung.generate(request))
    finally:
        rung.close()
    assert answer.text.strip()
    reference = run_sync(merged.generate(request))
    assert answer.text.split()[0] == reference.text.split()[0]


def test_existing_file_is_refused_without_force(adapter: Path) -> None:
    target = adapter / "taken.gguf"
    target.write_bytes(b"GGUF")
    with pytest.raises(RunError, match="--force"):
        export_gguf(adapter, target)
    with pytest.raises(ConfigurationError, match=r"\.gguf"):
        export_gguf(adapter, adapter / "model.bin")
    with pytest.raises(ConfigurationError, match="f16, f32, q8_0"):
        export_gguf(adapter, outtype="q4_k")  # type: ignore[arg-type]


def test_not_an_adapter_folder(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"adapter_config\.json"):
        export_gguf(tmp_path)


def test_unsupported_adapter_settings(tmp_path: Path) -> None:
    folder = tmp_path / "dora"
    write_random_adapter(folder, smollm2_135m_gguf())
    config = json.loads((folder / "adapter_config.json").read_text())
    config["use_dora"] = True
    (folder / "adapter_config.json").write_text(json.dumps(config))
    with pytest.raises(ConfigurationError, match="DoRA"):
        export_gguf(folder, tmp_path / "dora.gguf")


def test_base_that_is_no_gguf_is_refused_with_the_supported_cases(tmp_path: Path) -> None:
    folder = tmp_path / "hf-base"
    folder.mkdir()
    (folder / "config.json").write_text('{"architectures": ["LlamaForCausalLM"]}')
    with pytest.raises(ConfigurationError, match="llama-architecture GGUF") as info:
        check_exportable(resolve_source(str(folder)), str(folder))
    assert "convert_hf_to_gguf.py" in str(info.value)


def test_other_architectures_are_refused(tmp_path: Path) -> None:
    import gguf

    path = tmp_path / "tiny-gpt2.gguf"
    writer = gguf.GGUFWriter(str(path), "gpt2")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ConfigurationError, match="supports the llama architecture") as info:
        check_exportable(resolve_source(str(path)), str(path))
    assert "gpt2" in str(info.value)
