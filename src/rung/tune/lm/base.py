"""The base a LoRA run trains on: a transformers model (alias, hub id, folder or GGUF file),
checked before it loads, and how the card and peft's adapter_config.json name it."""

from __future__ import annotations

from pathlib import Path

from rung.errors import ConfigurationError
from rung.models.registry import providers
from rung.models.transformers import ALIASES, ModelSource, TransformersModel, TransformersOptions
from rung.tune.lm.options import DEFAULT_BASE, LoraOptions

__all__ = ["base_backend", "base_id_of", "base_path"]


def base_backend(base: str, options: LoraOptions) -> TransformersModel:
    """The transformers backend for ``base``, checked (file there, hub cached, a causal LM)."""
    provider, sep, name = base.partition(":")
    if sep and provider == TransformersModel.provider:
        base = name
    elif sep and provider in providers():  # another backend's model id
        raise ConfigurationError(
            f"LoRA tuning runs through transformers, not {provider}: pass --base "
            f"transformers:<hub id | folder | .gguf file> (e.g. {DEFAULT_BASE})"
        )
    model = TransformersModel(
        base, TransformersOptions(device=options.device, dtype="auto", threads=options.threads)
    )
    model.check()
    if model.source().kind == "adapter":
        raise ConfigurationError(
            f"{base} is a LoRA adapter folder, not a base model; tune its base (named in its "
            "rung.json) again, or merge it first (it has merged/ when trained with --merge) "
            "and tune that folder"
        )
    return model


def base_id_of(backend: TransformersModel) -> str:
    """The base as the card names it: the alias or hub id, or the absolute path of a file or
    folder (a relative one would mean another place when the folder is used elsewhere)."""
    source = backend.source()
    if source.kind in ("gguf", "folder") and backend.name not in ALIASES:
        return f"transformers:{Path(str(source.path)).resolve()}"
    return f"transformers:{backend.name}"


def base_path(source: ModelSource) -> str:
    """The base as the adapter_config.json of peft names it: what from_pretrained reads."""
    if source.kind == "hub":
        return str(source.repo)
    return str(Path(str(source.path)).resolve())
