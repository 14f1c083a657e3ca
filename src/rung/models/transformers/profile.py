"""What the transformers backend declares about its models (``rung.models.profile``): SmolLM2's
GGUF under the same name as llamacpp's (dequantized to float tensors: the catalog lists the
file once, under llamacpp), cards read from GGUF headers and model folders, machine time."""

from __future__ import annotations

from rung.models.bundled import SMOLLM2_135M, BundledFile
from rung.models.profile import BackendProfile, BundledName
from rung.models.transformers.options import INSTALL

__all__ = ["ALIASES", "PROFILE"]

PROFILE = BackendProfile(
    kind="decoder",
    card_sources=("gguf", "folder"),
    pricing="machine",
    bundled=(BundledName("smollm2-135m-instruct", SMOLLM2_135M, in_catalog=False),),
    requires=("torch", "transformers"),
    install=INSTALL,
)
#: bundled name -> file
ALIASES: dict[str, BundledFile] = {entry.name: entry.file for entry in PROFILE.bundled}
