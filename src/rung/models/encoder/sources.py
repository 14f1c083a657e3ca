"""Where an encoder's weights are: a bundled name, a local folder, or a Hugging Face hub id
(from the local cache, or fetched once the hub answered one quick request), and loading them
into sentence-transformers.

Local folders never touch the network (they load with ``local_files_only``). A hub id that is
not cached is looked up once, with one quick request, before sentence-transformers is let loose
on it: offline, sentence-transformers retries every file with backoff for over a minute.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from rung.errors import ModelLoadError, ModelNotFoundError, did_you_mean
from rung.models.encoder.profile import PROFILE

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = [
    "HUB_EXAMPLE",
    "check_folder",
    "encoder_folder",
    "hub_offline",
    "load_hub",
    "load_st",
    "not_cached",
    "position_limit",
    "resolve_encoder",
]

HUB_EXAMPLE = "sentence-transformers/all-mpnet-base-v2"
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


def resolve_encoder(name: str) -> tuple[Path | None, str | None]:
    """(local folder, hub id) of an encoder name: a bundled name or an existing folder gives a
    folder; a hub id gives its cached snapshot folder (or None) and the id. No network."""
    bundled = PROFILE.bundled_file(name)
    if bundled is not None:
        return bundled.locate(), None
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve(), None
    if path.exists():
        raise ModelLoadError(
            f"{path} is a file; an encoder is a folder (with config.json, and modules.json "
            "for sentence-transformers models): give the folder that holds it"
        )
    if _HUB_ID.match(name) and not name.startswith("."):
        return _cached_snapshot(name), name
    if "/" in name or "\\" in name or name.startswith("~"):
        raise ModelNotFoundError(
            f"model folder not found: {path}; check the path in encoder:{name}"
        )
    raise ModelNotFoundError(
        f"unknown encoder model {name!r}{did_you_mean(name, PROFILE.bundled_names)}; use a "
        f"bundled name ({', '.join(PROFILE.bundled_names)}), a folder path, or a Hugging Face hub id such as "
        f"{HUB_EXAMPLE}"
    )


def check_folder(folder: Path) -> None:
    if not any((folder / f).is_file() for f in ("config.json", "modules.json")):
        raise ModelLoadError(
            f"{folder} is not a sentence-transformers or Hugging Face model folder (it has "
            "no config.json or modules.json); point encoder: at the folder that holds them"
        )


def encoder_folder(name: str) -> Path:
    """The local folder of an encoder name, fetching a hub id that is not cached yet (one quick
    request first, so that no network fails at once). For code that loads the weights itself
    (``rung tune``) rather than through sentence-transformers."""
    folder, hub_id = resolve_encoder(name)
    if folder is None:
        assert hub_id is not None
        _hub_reachable(hub_id)
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(hub_id))
        except Exception as e:  # the boundary: any download failure means the same to the user
            raise ModelLoadError(
                not_cached(hub_id, f"the download failed ({type(e).__name__}: {e})")
            ) from e
    check_folder(folder)
    return folder


def hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it again for a late setting
    return any(
        os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def not_cached(hub_id: str, why: str) -> str:
    return (
        f"{hub_id} is not in the local Hugging Face cache and {why}; download it where the hub "
        f"is reachable (`hf download {hub_id}`) and copy the cache, or give encoder: the path "
        f"of a local model folder (there is no folder {Path(hub_id).resolve()})"
    )


def _cached_snapshot(hub_id: str) -> Path | None:
    """The cached snapshot folder of a hub model (its name is the revision hash), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def load_st(
    cls: type[SentenceTransformer], source: str, device: str, *, local_only: bool
) -> SentenceTransformer:
    try:
        return cls(source, device=device, local_files_only=local_only)
    except Exception as e:  # the boundary: any failure to build the model is a load error
        raise ModelLoadError(
            f"cannot load the encoder {source}: {type(e).__name__}: {e}; check that it is a "
            "sentence-transformers or Hugging Face encoder"
        ) from e


def _hub_reachable(hub_id: str) -> None:
    """One quick request: a missing network fails here at once, not after minutes of retries."""
    if hub_offline():
        raise ModelLoadError(not_cached(hub_id, "HF_HUB_OFFLINE is set"))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(hub_id, timeout=10)
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"{hub_id} is not on the Hugging Face hub (or it is private or gated: run "
            f"`hf auth login`), nor a folder here ({Path(hub_id).resolve()}); check the id "
            f"(e.g. {HUB_EXAMPLE}) or the path"
        ) from e
    except Exception as e:  # any transport error means the same thing to the user
        raise ModelLoadError(
            not_cached(hub_id, f"the hub cannot be reached ({type(e).__name__}: {e})")
        ) from e


def load_hub(cls: type[SentenceTransformer], hub_id: str, device: str) -> SentenceTransformer:
    if _cached_snapshot(hub_id) is not None:
        try:
            return cls(hub_id, device=device, local_files_only=True)
        except OSError:
            pass  # partly cached: fetch the rest below
    _hub_reachable(hub_id)
    return load_st(cls, hub_id, device, local_only=False)


def position_limit(st: SentenceTransformer) -> int | None:
    config = getattr(getattr(st[0], "auto_model", None), "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) else None
