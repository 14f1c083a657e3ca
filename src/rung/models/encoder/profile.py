"""What the encoder backend declares about its models (``rung.models.profile``): the bundled
MiniLM folder, cards read from model folders (config.json, safetensors headers), priced in
machine time."""

from __future__ import annotations

from rung.models.bundled import MINILM_L6
from rung.models.encoder.options import INSTALL
from rung.models.profile import BackendProfile, BundledName

__all__ = ["PROFILE"]

PROFILE = BackendProfile(
    kind="encoder",
    card_sources=("folder",),
    pricing="machine",
    bundled=(BundledName("minilm-l6", MINILM_L6),),
    requires=("sentence_transformers", "sklearn"),
    install=INSTALL,
)
