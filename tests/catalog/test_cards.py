"""Cards for the bundled models (read from their real files), the catalog's hub entries, API
models (priced by genai-prices), local folders, and user overrides."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from rung.catalog import cards as cards_mod
from rung.catalog.cards import all_cards, card_for, is_local_url
from rung.catalog.hf_meta import read_hf_folder
from rung.catalog.overrides import load_overrides
from rung.catalog.prices import api_price
from rung.errors import ModelLoadError, ModelNotFoundError, SpecError
from rung.models.bundled import minilm_l6_dir


def test_minilm_card_from_its_files() -> None:
    f = read_hf_folder(minilm_l6_dir())
    assert f.params == 22_713_216  # safetensors header shapes, without the int64 position ids
    assert (f.n_layers, f.n_heads, f.hidden_size, f.context_length) == (6, 12, 384, 512)
    assert f.dtype == "F32" and f.bytes_per_param == 4
    assert f.license == "apache-2.0"  # from the model card's front matter
    assert f.max_seq_length == 256
    card = card_for("encoder:minilm-l6")
    assert card.kind == "encoder"
    assert card.kv_values_per_token == 0  # an encoder keeps no KV cache
    assert card.weights_bytes == 22_713_216 * 4
    assert card.on_prem is True and card.price is None


def test_bundled_gguf_cards() -> None:
    smol = card_for("llamacpp:smollm2-135m-instruct")
    assert (smol.params, smol.n_layers, smol.context_length) == (134_515_008, 30, 8192)
    assert (smol.n_kv_heads, smol.head_dim, smol.quantization) == (3, 64, "Q4_1")
    assert smol.kv_values_per_token == 30 * 3 * (64 + 64)
    assert smol.weights_bytes == smol.file_size_bytes
    gemma = card_for("llamacpp:gemma-3-270m")
    assert gemma.license == "gemma" and gemma.quantization == "Q4_K_M"
    assert gemma.kv_values_per_token == 18 * 1 * (256 + 256)
    assert any("GGUF header" in c.figures_from for c in (smol, gemma))


def test_catalog_entries_are_consistent_with_their_configs() -> None:
    """Each hub entry's params is recomputed from its own config figures (llama/qwen2 layout)."""
    for entry in cards_mod._hub_entries().values():
        c = entry["config"]
        h, inter, layers = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
        heads, kv, vocab = c["num_attention_heads"], c["num_key_value_heads"], c["vocab_size"]
        hd = c.get("head_dim", h // heads)
        bias = entry["attention_bias"]
        attn = h * heads * hd + 2 * h * kv * hd + heads * hd * h
        if bias:
            attn += heads * hd + 2 * kv * hd
        per_layer = attn + 3 * h * inter + 2 * h
        embed = vocab * h * (1 if c["tie_word_embeddings"] else 2)
        assert entry["params"] == embed + layers * per_layer + h, entry["id"]
        assert entry["source"].startswith("https://huggingface.co/"), entry["id"]
        card = card_for(entry["id"])
        assert card.measured_here is False
        assert "not measured here" in card.figures_from
        assert card.file_size_bytes is None  # not known without the files


def test_api_card_prices_come_from_genai_prices() -> None:
    card = card_for("openai:gpt-4o-mini")
    expected = api_price("gpt-4o-mini", "openai")
    assert expected is not None and card.price == expected
    assert card.price.source.startswith("genai-prices")
    assert card.kind == "api" and card.on_prem is False
    assert card.memory(4096).total_bytes is None
    unknown = card_for("openai:no-such-model-xyz")
    assert unknown.price is None
    assert any("no price" in n for n in unknown.notes)


def test_local_endpoint_is_on_premises() -> None:
    assert is_local_url("http://localhost:11434/v1")
    assert is_local_url("http://10.0.0.5:8000/v1")
    assert not is_local_url("https://api.openai.com/v1")
    card = card_for("openai:qwen2.5:7b", base_url="http://127.0.0.1:11434/v1")
    assert card.on_prem is True and card.price is None


def test_hf_folder_from_safetensors_header(tmp_path: Path) -> None:
    """A folder whose safetensors header lists shapes: parameters without loading weights."""
    config = {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "torch_dtype": "bfloat16",
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    header: dict[str, Any] = {
        "embed": {"dtype": "BF16", "shape": [100, 64], "data_offsets": [0, 12800]},
        "ids": {"dtype": "I64", "shape": [1, 2048], "data_offsets": [12800, 29184]},
    }
    blob = json.dumps(header).encode()
    (tmp_path / "model.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob)
    card = card_for(f"transformers:{tmp_path}")
    assert card.params == 6400
    assert card.weights_bytes == 12800
    assert card.kv_values_per_token == 2 * 2 * 2 * 16
    assert card.quantization == "bf16"
    assert card.license is None  # no README: unknown


def test_unknown_models_are_errors_with_suggestions(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="did you mean 'llamacpp:smollm2-135m-instruct'"):
        card_for("llamacpp:smollm2-135m")
    with pytest.raises(ModelNotFoundError, match="form provider:name"):
        card_for("smollm2")
    with pytest.raises(ModelNotFoundError, match="reads no model hub offline"):
        card_for("transformers:someone/unknown-model")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ModelLoadError, match=r"no config\.json"):
        card_for(f"encoder:{tmp_path / 'folder'}")


def test_overrides(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"id": "llamacpp:smollm2-135m-instruct", "license": "ours"},
                    {
                        "id": "openai:our-gateway",
                        "on_prem": True,
                        "price_input_per_mtok": 0.0,
                        "price_output_per_mtok": 0.0,
                    },
                    {
                        "id": "cascade:router",
                        "params": 1_000_000,
                        "weights_bytes": 4_000_000,
                        "n_layers": 2,
                        "n_kv_heads": 2,
                        "head_dim": 8,
                        "context_length": 512,
                    },
                ]
            }
        )
    )
    found = load_overrides(path)
    smol = card_for("llamacpp:smollm2-135m-instruct", found, overrides_source=str(path))
    assert smol.license == "ours" and smol.params == 134_515_008
    assert any(str(path) in n for n in smol.notes)
    gateway = card_for("openai:our-gateway", found)
    assert gateway.on_prem is True and gateway.price is not None
    assert gateway.price.input_per_mtok == 0.0
    router = card_for("cascade:router", found)
    assert router.origin == "override" and router.kv_values_per_token == 2 * 2 * 2 * 8
    assert router.memory(512).total_bytes is not None
    ids = {c.model_id for c in all_cards(found)}
    assert {"cascade:router", "openai:our-gateway"} <= ids


def test_overrides_reject_unknown_fields(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("models:\n  - id: openai:x\n    parms: 3\n")
    with pytest.raises(SpecError, match=r"unknown field 'models\.0\.parms'"):
        load_overrides(path)
    with pytest.raises(SpecError, match="catalog file not found"):
        load_overrides(tmp_path / "missing.yaml")


def test_overrides_from_environment(tmp_path: Path) -> None:
    path = tmp_path / "env.yaml"
    path.write_text("models:\n  - id: openai:gpt-4o-mini\n    on_prem: true\n")
    assert "openai:gpt-4o-mini" in load_overrides(environ={"RUNG_CATALOG": str(path)})
    assert load_overrides(environ={}) == {}


def test_all_cards_lists_bundled_catalog_and_api() -> None:
    cards = {c.model_id: c for c in all_cards()}
    for model_id in (
        "encoder:minilm-l6",
        "llamacpp:smollm2-135m-instruct",
        "llamacpp:gemma-3-270m",
        "transformers:Qwen/Qwen2.5-0.5B-Instruct",
        "openai:gpt-4o-mini",
    ):
        assert model_id in cards
    doc = cards["llamacpp:smollm2-135m-instruct"].to_json(4096)
    json.dumps(doc)
    assert doc["fits"]["phone"] is True
    assert math.isclose(
        doc["memory"]["total_bytes"],
        doc["memory"]["weights_bytes"]
        + doc["memory"]["kv_cache_bytes"]
        + doc["memory"]["overhead_bytes"],
    )
