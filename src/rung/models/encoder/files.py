"""An encoder folder's files: which hold the weights, their size, and the stamp of what
changes the answers (for the response cache)."""

from __future__ import annotations

from pathlib import Path

from rung.models.encoder.tuned import CARD_FILE, read_json_object

__all__ = ["folder_max_seq", "weights_size", "weights_stamp"]


def _weight_files(folder: Path) -> list[Path]:
    """Weight files, one format per folder: hub repos often hold the same weights twice.
    sentence-transformers keeps a module's weights at most one folder down (``2_Dense/``)."""
    found: list[Path] = []
    for where in [folder, *(p for p in sorted(folder.iterdir()) if p.is_dir())]:
        safetensors = sorted(where.glob("*.safetensors"))
        found.extend(safetensors or sorted(where.glob("*.bin")))
    return found


def weights_size(folder: Path) -> int | None:
    files = _weight_files(folder)
    return sum(f.stat().st_size for f in files) if files else None


def weights_stamp(folder: Path) -> list[tuple[str, int, int]]:
    files = [
        *_weight_files(folder),
        folder / "config.json",
        folder / "modules.json",
        folder / CARD_FILE,
    ]
    return [
        (str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns)
        for f in files
        if f.is_file()
    ]


def folder_max_seq(folder: Path | None) -> int | None:
    if folder is None:
        return None
    value = read_json_object(folder / "sentence_bert_config.json").get("max_seq_length")
    return int(value) if isinstance(value, int) else None
