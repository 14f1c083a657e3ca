"""Where rung keeps things on disk, read from the environment when asked (never at import)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_dir"]


def cache_dir() -> Path:
    """``$RUNG_CACHE_DIR``, else ``$XDG_CACHE_HOME/rung``, else ``~/.cache/rung``."""
    explicit = os.environ.get("RUNG_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "rung"


def data_dir() -> Path:
    """Folder for files rung derives once and keeps (assembled GGUF files): ``$RUNG_FILES_DIR``,
    else ``files/`` in the cache folder."""
    explicit = os.environ.get("RUNG_FILES_DIR")
    path = Path(explicit).expanduser() if explicit else cache_dir() / "files"
    path.mkdir(parents=True, exist_ok=True)
    return path
