"""User overrides of model cards, from a YAML file (``--catalog FILE`` or ``$RUNG_CATALOG``).

Each entry names a model id and the facts to set; any field left out keeps what rung read from
the model itself. An id rung knows nothing about becomes a card of its own, so a team can
describe its private models and endpoints::

    models:
      - id: openai:my-gateway-model
        on_prem: true                # our own server: data stays in the building
        price_input_per_mtok: 0.0
        price_output_per_mtok: 0.0
      - id: transformers:/models/our-7b
        params: 7_000_000_000
        context_length: 8192
        license: proprietary
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from rung.errors import SpecError, validation_message

__all__ = ["CATALOG_ENV", "CardOverride", "CatalogFile", "load_overrides"]

CATALOG_ENV = "RUNG_CATALOG"


class CardOverride(BaseModel):
    """Facts about one model, set by the user."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="The model id, provider:name, e.g. llamacpp:/models/x.gguf.")
    description: str | None = Field(default=None, description="One line shown by rung models.")
    kind: Literal["decoder", "encoder", "api"] | None = Field(
        default=None, description="decoder (generative), encoder, or api (runs remotely)."
    )
    architecture: str | None = Field(default=None, description="e.g. llama, qwen2, bert.")
    params: int | None = Field(default=None, ge=1, description="Number of parameters.")
    quantization: str | None = Field(default=None, description="e.g. Q4_K_M, bf16.")
    context_length: int | None = Field(default=None, ge=1, description="Longest context, tokens.")
    n_layers: int | None = Field(default=None, ge=1, description="Transformer blocks.")
    n_kv_heads: int | None = Field(default=None, ge=1, description="Key/value heads per layer.")
    head_dim: int | None = Field(default=None, ge=1, description="Size of one attention head.")
    weights_bytes: int | None = Field(
        default=None, ge=1, description="Memory the weights take, bytes."
    )
    file_size_bytes: int | None = Field(default=None, ge=1, description="Size on disk, bytes.")
    license: str | None = Field(default=None, description="License name, e.g. apache-2.0.")
    on_prem: bool | None = Field(
        default=None, description="Whether the model runs on your premises (data stays)."
    )
    price_input_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million input tokens."
    )
    price_output_per_mtok: float | None = Field(
        default=None, ge=0, description="USD per million output tokens."
    )


class CatalogFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: list[CardOverride] = Field(default_factory=list, description="One entry per model.")


def load_overrides(
    path: Path | None = None, environ: Mapping[str, str] | None = None
) -> dict[str, CardOverride]:
    """The overrides in ``path``, else in the file ``$RUNG_CATALOG`` names, else none."""
    env = os.environ if environ is None else environ
    if path is None and env.get(CATALOG_ENV):
        path = Path(env[CATALOG_ENV]).expanduser()
    if path is None:
        return {}
    if not path.is_file():
        raise SpecError(f"catalog file not found: {path}; check --catalog or ${CATALOG_ENV}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: malformed YAML: {getattr(e, 'problem', None) or e}") from None
    except UnicodeDecodeError:
        raise SpecError(f"{path}: not a UTF-8 text file") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"{path}: a catalog is a YAML mapping with a models: list")
    try:
        parsed = CatalogFile.model_validate(data)
    except ValidationError as e:
        raise SpecError(f"{path}: {validation_message(e)}") from None
    found: dict[str, CardOverride] = {}
    for entry in parsed.models:
        if entry.id in found:
            raise SpecError(f"{path}: model {entry.id!r} is listed twice; merge the entries")
        found[entry.id] = entry
    return found
