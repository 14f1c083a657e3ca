"""Markdown and plain text: the file is the text; markdown's ``#`` lines are its headings."""

from __future__ import annotations

import re
from pathlib import Path

from rung.errors import DataError
from rung.rag.documents import Document, Heading, ReadOptions

__all__ = ["decode", "markdown_headings", "nonempty", "read_bytes", "read_markdown", "read_plain"]

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$", re.MULTILINE)
_FENCE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)


def read_bytes(path: Path) -> bytes:
    """The file's bytes, or one DataError that says why they cannot be had."""
    try:
        return path.read_bytes()
    except PermissionError:
        raise DataError(
            f"cannot read {path}: permission denied; make it readable or leave it out"
        ) from None
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror or e}; check the file") from None


def decode(raw: bytes, path: Path) -> str:
    """UTF-8 (with or without a byte-order mark), else latin-1, which many exports use."""
    if b"\x00" in raw[:4096]:
        raise DataError(
            f"{path} looks like a binary file, not text; leave it out or convert it to text"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def nonempty(text: str, path: Path) -> str:
    if not text.strip():
        raise DataError(f"{path} is empty: it holds no text to index; add text or leave it out")
    return text


def markdown_headings(text: str) -> tuple[Heading, ...]:
    """ATX headings (``## Returns``) outside fenced code blocks."""
    fenced: list[tuple[int, int]] = []
    fences = list(_FENCE.finditer(text))
    for opening, closing in zip(fences[::2], fences[1::2], strict=False):
        fenced.append((opening.start(), closing.end()))
    if len(fences) % 2:  # an unclosed fence runs to the end, as in CommonMark
        fenced.append((fences[-1].start(), len(text)))
    return tuple(
        Heading(level=len(m.group(1)), title=m.group(2).strip(), start=m.start())
        for m in _ATX.finditer(text)
        if not any(a <= m.start() < b for a, b in fenced)
    )


def read_markdown(path: Path, source: str, options: ReadOptions) -> list[Document]:
    text = nonempty(decode(read_bytes(path), path), path)
    return [Document(source=source, text=text, headings=markdown_headings(text))]


def read_plain(path: Path, source: str, options: ReadOptions) -> list[Document]:
    return [Document(source=source, text=nonempty(decode(read_bytes(path), path), path))]
