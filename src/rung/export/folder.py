"""How a model folder appears at ``out``: the refusal to overwrite what is there, and the write
beside ``out`` then rename into place. Every model folder rung writes goes through here
(``rung tune``, ``tune-lm``, ``distill``, ``rung export onnx``).

A run writes into a hidden folder next to ``out`` (``.<name>.partial-*``) and renames it to
``out`` only once every file is there, so an interrupted or failed run leaves the old model (or
nothing) at ``out``, never half a folder. ``--force`` swaps an existing model out only then.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rung.errors import RunError
from rung.models.encoder import CARD_FILE, HEAD_FILE

__all__ = ["MODEL_FILES", "check_out", "file_sha256", "publish", "staging"]

#: files that make a folder a model (what --force may replace)
MODEL_FILES = (CARD_FILE, "config.json", "modules.json", "model.safetensors", HEAD_FILE)


def check_out(out: Path, force: bool) -> None:
    """Refuse an ``out`` that would lose something: a file, a folder with other content, or a
    model (unless ``force``)."""
    if not out.exists():
        return
    if not out.is_dir():
        raise RunError(f"{out} is a file; give --out the path of a folder for the model")
    if not any(out.iterdir()):
        return
    if any((out / name).exists() for name in MODEL_FILES):
        if force:
            return
        raise RunError(
            f"{out} already holds a model; pass --force to replace it (the old one is kept "
            "until the new one is complete), or choose another --out"
        )
    raise RunError(
        f"{out} is not empty and holds no model; give --out a new or empty folder (--force "
        "replaces a model folder only, never other files)"
    )


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A fresh hidden folder beside ``out`` (same file system, so the final rename is atomic);
    removed on the way out, whatever happened."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        raise RunError(f"cannot write beside {out}: {e}; choose a writable --out") from e
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def publish(tmp: Path, out: Path) -> None:
    """Rename the complete folder ``tmp`` to ``out``; an existing ``out`` is moved aside first
    and deleted only after the rename succeeded."""
    old: Path | None = None
    try:
        if out.exists():
            old = out.with_name(f".{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
        tmp.rename(out)
    except OSError as e:
        if old is not None and not out.exists():
            old.rename(out)
        raise RunError(f"cannot move the new model into {out}: {e}; check the folder") from e
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def file_sha256(path: Path) -> str:
    """The hex SHA-256 of a file (the data a card names, read in 1 MiB chunks)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
