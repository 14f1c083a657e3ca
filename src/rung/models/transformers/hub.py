"""The Hugging Face hub as the transformers backend meets it: its local cache first, and one
quick request to tell whether the hub can be reached before transformers retries for minutes."""

from __future__ import annotations

import importlib.util
import os
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["hub_endpoint", "hub_help", "hub_offline", "hub_reachable", "hub_snapshot"]

_TRUTHY = {"1", "true", "yes", "on"}


def hub_offline() -> bool:
    return any(
        os.environ.get(var, "").strip().lower() in _TRUTHY
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout_s: float = 5.0) -> str | None:
    """None when the hub answers, else why not. urllib honours HTTPS_PROXY like the hub client."""
    request = urllib.request.Request(hub_endpoint() + "/api/models?limit=1", method="HEAD")
    try:
        with urllib.request.urlopen(request, timeout=timeout_s):
            return None
    except urllib.error.HTTPError:
        return None  # it answered: the hub is up, whatever it thinks of this request
    except (urllib.error.URLError, OSError) as e:
        return str(getattr(e, "reason", e))


def hub_snapshot(repo: str) -> Path | None:
    """The cached snapshot folder of a hub model, or None when it is not cached."""
    if importlib.util.find_spec("huggingface_hub") is None:
        return None
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def hub_help(repo: str) -> str:
    return (
        f"download it once on a machine with access (`hf download {repo}`) and copy the "
        "Hugging Face cache (~/.cache/huggingface/hub) here, or pass the model's local folder "
        "or a .gguf file instead of the hub id"
    )
