"""Model cards: parameters, quantization, context, memory, license, price and the devices a
model fits, read from the model's own metadata (GGUF header, config.json, safetensors header)
or from the maintained price source, never from the backends."""

from rung.catalog.cards import ModelCard, all_cards, card_for, catalog_ids, is_local_url
from rung.catalog.devices import DEVICES, Device, UnknownDeviceError, get_device
from rung.catalog.memory import (
    QUANT_BITS_PER_WEIGHT,
    Fit,
    MemoryEstimate,
    QuantOption,
    estimate_memory,
    fit,
    quantization_options,
)
from rung.catalog.overrides import CardOverride, load_overrides
from rung.catalog.prices import ApiPrice, api_price

__all__ = [
    "DEVICES",
    "QUANT_BITS_PER_WEIGHT",
    "ApiPrice",
    "CardOverride",
    "Device",
    "Fit",
    "MemoryEstimate",
    "ModelCard",
    "QuantOption",
    "UnknownDeviceError",
    "all_cards",
    "api_price",
    "card_for",
    "catalog_ids",
    "estimate_memory",
    "fit",
    "get_device",
    "is_local_url",
    "load_overrides",
    "quantization_options",
]
