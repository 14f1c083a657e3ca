"""The memory estimate, device fits and quantization sizes, on cards with known figures."""

from __future__ import annotations

import pytest

from rung.catalog.cards import ModelCard, card_for
from rung.catalog.devices import DEVICES, GIB, UnknownDeviceError, get_device
from rung.catalog.memory import (
    OVERHEAD_FIXED_BYTES,
    QUANT_BITS_PER_WEIGHT,
    estimate_memory,
    fit,
    quantization_options,
)


def _card(**kw: object) -> ModelCard:
    base: dict[str, object] = {
        "model_id": "llamacpp:/m.gguf",
        "kind": "decoder",
        "origin": "test",
        "figures_from": "test",
        "params": 7_000_000_000,
        "weights_bytes": 14_000_000_000,
        "n_layers": 32,
        "n_kv_heads": 8,
        "head_dim": 128,
        "kv_values_per_token": 2 * 32 * 8 * 128,
        "context_length": 32768,
        "on_prem": True,
    }
    base.update(kw)
    return ModelCard(**base)  # type: ignore[arg-type]


def test_kv_cache_formula() -> None:
    mem = estimate_memory(_card(), 4096)
    assert mem.kv_cache_bytes == 2 * 32 * 4096 * 8 * 128 * 2  # 512 MiB
    assert (
        mem.overhead_bytes
        == int(0.1 * (14_000_000_000 + mem.kv_cache_bytes)) + OVERHEAD_FIXED_BYTES
    )
    parts = (mem.weights_bytes, mem.kv_cache_bytes, mem.overhead_bytes)
    assert mem.total_bytes == sum(p or 0 for p in parts)


def test_context_beyond_the_model_is_capped_and_said() -> None:
    mem = estimate_memory(_card(context_length=2048), 8192)
    assert mem.context == 2048
    assert any("at most 2048" in n for n in mem.notes)


def test_unknown_parts_give_an_unknown_total() -> None:
    assert estimate_memory(_card(kv_values_per_token=None), 4096).total_bytes is None
    assert estimate_memory(_card(weights_bytes=None), 4096).total_bytes is None


def test_devices() -> None:
    assert get_device("Phone").usable_bytes == 3 * GIB
    assert DEVICES["laptop"].usable_bytes == int(16 * GIB * 0.6)
    assert list(DEVICES) == ["phone", "laptop", "gpu24", "gpu80", "multi-gpu"]
    with pytest.raises(UnknownDeviceError, match="did you mean 'laptop'"):
        get_device("labtop")


def test_fit_and_quantization_suggestion() -> None:
    card = _card()
    assert fit(card, get_device("laptop"), 4096).fits is False
    assert fit(card, get_device("gpu24"), 4096).fits is True
    options = quantization_options(card, get_device("laptop"), 4096)
    assert [o.name for o in options] == list(QUANT_BITS_PER_WEIGHT)
    q8 = options[0]
    assert q8.bits_per_weight == 8.5  # Q8_0: 34 bytes per 32 weights
    assert q8.weights_bytes == int(7_000_000_000 * 8.5 / 8)
    fitting = [o.name for o in options if o.fits]
    assert fitting and fitting[0] == "Q8_0"  # 7.4 GB of weights + 0.5 GB of KV cache
    assert quantization_options(_card(params=None), get_device("laptop"), 4096) == []


def test_bundled_models_fit_a_phone() -> None:
    phone = get_device("phone")
    for model_id in (
        "encoder:minilm-l6",
        "llamacpp:smollm2-135m-instruct",
        "llamacpp:gemma-3-270m",
    ):
        result = fit(card_for(model_id), phone, 4096)
        assert result.fits is True, model_id
        assert result.spare_bytes is not None and result.spare_bytes > 2 * GIB
