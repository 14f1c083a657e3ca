"""How much memory a model needs at a context length, and whether that fits a device.

The estimate has three parts, each from the model's own metadata:

- **weights** — the GGUF file's size (llama.cpp maps the whole file), or parameters × bytes per
  parameter of the stored dtype for a Hugging Face model;
- **KV cache** — ``2 × n_layers × n_ctx × n_kv_heads × head_dim × 2 bytes``: keys and values,
  per layer, per token of context, in f16 (llama.cpp's default cache type; transformers keeps
  the cache in the model's dtype, bf16 or f16 for the models that matter here). Models that list
  a KV head count per layer are summed per layer. Encoders keep no KV cache. Sliding-window
  layers are counted at the full context, so the figure is an upper bound for such models;
- **overhead** — compute buffers, the runtime and the tokenizer: 10% of the other two plus
  64 MiB. This is an assumption, not a measurement.

A part that cannot be read from the metadata stays None, and so does the total: rung says
"unknown" rather than guessing.

``rung fit`` also estimates the weights at other llama.cpp quantizations as parameters × bits per
weight. The figures are llama.cpp's published averages (tools/quantize/README.md, the Llama 2 7B
table); Q8_0's comes from its block format (34 bytes per 32 weights, from ``gguf``'s
GGML_QUANT_SIZES). Small models keep their embeddings at higher precision, so their files run
larger per weight than these averages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rung.catalog.devices import Device

if TYPE_CHECKING:
    from rung.catalog.cards import ModelCard

__all__ = [
    "KV_BYTES_PER_VALUE",
    "QUANT_BITS_PER_WEIGHT",
    "Fit",
    "MemoryEstimate",
    "QuantOption",
    "estimate_memory",
    "fit",
    "quantization_options",
]

KV_BYTES_PER_VALUE = 2
OVERHEAD_FRACTION = 0.10
OVERHEAD_FIXED_BYTES = 64 * 2**20


def _q8_0_bits() -> float:
    from gguf import GGML_QUANT_SIZES, GGMLQuantizationType

    block, size = GGML_QUANT_SIZES[GGMLQuantizationType.Q8_0]
    return size * 8 / block


#: llama.cpp quantizations from larger to smaller, with their average bits per weight
QUANT_BITS_PER_WEIGHT: dict[str, float] = {
    "Q8_0": _q8_0_bits(),  # 8.5
    "Q6_K": 6.56,
    "Q5_K_M": 5.68,
    "Q4_K_M": 4.84,
    "Q3_K_M": 3.91,
    "Q2_K": 3.35,
}


@dataclass(frozen=True)
class MemoryEstimate:
    context: int  # the context the estimate is for (the model's own when asked for more)
    weights_bytes: int | None
    kv_cache_bytes: int | None
    overhead_bytes: int | None
    total_bytes: int | None
    notes: tuple[str, ...] = ()


def _overhead(weights: int, kv: int) -> int:
    return int(OVERHEAD_FRACTION * (weights + kv)) + OVERHEAD_FIXED_BYTES


def _kv_bytes(card: ModelCard, context: int) -> int | None:
    if card.kv_values_per_token is None:
        return None
    return card.kv_values_per_token * context * KV_BYTES_PER_VALUE


def estimate_memory(
    card: ModelCard, context: int, weights_bytes: int | None = None
) -> MemoryEstimate:
    """Memory ``card``'s model needs at ``context`` tokens (weights given to try another
    quantization)."""
    notes: list[str] = []
    if card.kind == "api":
        return MemoryEstimate(context, None, None, None, None, ("runs behind an API",))
    used = context
    if card.context_length is not None and context > card.context_length:
        used = card.context_length
        notes.append(
            f"the model reads at most {card.context_length} tokens; estimated at that context"
        )
    if card.sliding_window is not None and card.sliding_window < used:
        notes.append(
            f"sliding-window layers ({card.sliding_window} tokens) counted at the full context: "
            "an upper bound"
        )
    weights = weights_bytes if weights_bytes is not None else card.weights_bytes
    kv = _kv_bytes(card, used)
    if weights is None:
        notes.append("weights size unknown")
    if kv is None:
        notes.append("KV cache unknown: the metadata lacks layers, KV heads or head size")
    if weights is None or kv is None:
        return MemoryEstimate(used, weights, kv, None, None, tuple(notes))
    overhead = _overhead(weights, kv)
    return MemoryEstimate(used, weights, kv, overhead, weights + kv + overhead, tuple(notes))


@dataclass(frozen=True)
class Fit:
    device: Device
    memory: MemoryEstimate
    fits: bool | None  # None: the memory is unknown, or the model does not run on the device
    spare_bytes: int | None  # usable minus needed; negative when it does not fit


def fit(card: ModelCard, device: Device, context: int) -> Fit:
    memory = estimate_memory(card, context)
    if memory.total_bytes is None:
        return Fit(device, memory, None, None)
    spare = device.usable_bytes - memory.total_bytes
    return Fit(device, memory, spare >= 0, spare)


@dataclass(frozen=True)
class QuantOption:
    name: str
    bits_per_weight: float
    weights_bytes: int
    total_bytes: int | None
    fits: bool | None
    spare_bytes: int | None


def quantization_options(card: ModelCard, device: Device, context: int) -> list[QuantOption]:
    """The llama.cpp quantizations of ``card``'s model, larger first, with whether each fits.
    Empty when the parameter count is unknown or the model is not a local decoder."""
    if card.params is None or card.kind != "decoder":
        return []
    options = []
    for name, bpw in QUANT_BITS_PER_WEIGHT.items():
        weights = int(card.params * bpw / 8)
        mem = estimate_memory(card, context, weights_bytes=weights)
        spare = None if mem.total_bytes is None else device.usable_bytes - mem.total_bytes
        options.append(
            QuantOption(
                name,
                bpw,
                weights,
                mem.total_bytes,
                None if spare is None else spare >= 0,
                spare,
            )
        )
    return options
