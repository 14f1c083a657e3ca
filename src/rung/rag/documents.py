"""What the readers hand the chunker: a document's text and where its headings are.

A ``Document`` is one file (``.md``, ``.txt``, ``.html``, ``.pdf``) or one record of a table
(``.jsonl``, ``.csv``, ``.json``). Its ``text`` is what the chunk offsets index into: the file
itself for markdown and plain text, the extracted text for HTML and PDF, the text column for a
record. Headings are markers in that text (a markdown ``##`` line, an HTML ``<h2>``, a PDF page
break), so that every chunk knows the heading path it sits under.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Document", "Heading", "ReadOptions"]


@dataclass(frozen=True)
class Heading:
    """A heading of ``level`` (1 is the top) that starts at character ``start`` of the text."""

    level: int
    title: str
    start: int


@dataclass(frozen=True)
class Document:
    """One document to index.

    ``source`` is the file's path relative to the DOCS argument it was found under (posix
    slashes), what search filters by; ``record`` is the row's id for a table (None for a
    file); ``title`` a record's title column, which heads all its chunks."""

    source: str
    text: str
    record: str | None = None
    title: str | None = None
    headings: tuple[Heading, ...] = ()


@dataclass(frozen=True)
class ReadOptions:
    """How to read tables: which column holds the text, and the optional id and title columns.
    ``text`` None means "the only column named text, content, body or answer"."""

    text: str | None = None
    id: str | None = None
    title: str | None = None
    #: a PDF whose text layer gives fewer letters per page on average has none (a scan; page
    #: numbers and stray marks make a few)
    pdf_min_chars_per_page: int = field(default=8)
