"""Document readers, one module per family of formats, chosen by the file's extension.

    read_path(path, source, options) -> list[Document]

``.md``/``.markdown`` (headings from ``#`` lines), ``.txt``, ``.html``/``.htm`` (visible text,
h1-h6 headings), ``.pdf`` (the text layer, a heading per page), ``.jsonl``/``.csv``/``.tsv``/
``.json`` (one document per record, from a text column). Every problem with a file (empty,
unreadable, binary, a PDF without text) is one DataError naming the file and what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from rung.errors import DataError
from rung.rag.documents import Document, ReadOptions
from rung.rag.readers.html import read_html
from rung.rag.readers.pdf import read_pdf
from rung.rag.readers.records import read_records
from rung.rag.readers.text import read_markdown, read_plain

__all__ = ["READERS", "Reader", "read_path", "supported"]

Reader = Callable[[Path, str, ReadOptions], list[Document]]

READERS: dict[str, Reader] = {
    ".md": read_markdown,
    ".markdown": read_markdown,
    ".txt": read_plain,
    ".html": read_html,
    ".htm": read_html,
    ".pdf": read_pdf,
    ".jsonl": read_records,
    ".ndjson": read_records,
    ".csv": read_records,
    ".tsv": read_records,
    ".json": read_records,
}


def supported(path: Path) -> bool:
    return path.suffix.lower() in READERS


def read_path(path: Path, source: str, options: ReadOptions | None = None) -> list[Document]:
    """The documents in one file; ``source`` is the name they are indexed under."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise DataError(
            f"cannot index {path}: unknown extension {path.suffix or '(none)'!r}; rung reads "
            f"{', '.join(sorted(READERS))}"
        )
    return reader(path, source, options or ReadOptions())
