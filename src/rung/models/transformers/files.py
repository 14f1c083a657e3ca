"""A model folder's files: the weights, and the stamps the response cache keys on."""

from __future__ import annotations

from pathlib import Path

__all__ = ["folder_stats", "stat", "weight_files"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")
_FINGERPRINT_SUFFIXES = (*_WEIGHT_SUFFIXES, ".json", ".jinja", ".model", ".txt")


def weight_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    safetensors = [p for p in files if p.suffix == ".safetensors"]
    return safetensors or files  # transformers prefers safetensors when both are there


def folder_stats(folder: Path) -> list[tuple[str, int, int]]:
    return [
        stat(p)
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in _FINGERPRINT_SUFFIXES
    ]


def stat(path: Path) -> tuple[str, int, int]:
    st = path.stat()
    return path.name, st.st_size, st.st_mtime_ns
