"""Documents into overlapping chunks of tokens, each with its heading path, its character
offsets in the document's text, a stable id and a hash of its content.

Tokens are words and single punctuation marks (``\\w+|[^\\w\\s]``): the count a WordPiece or BPE
tokenizer makes of English prose is about the same or a little higher (rare words split in
pieces), and the chunker needs no model to count. A chunk never spans two sections: each
heading starts a new one, so that a chunk's heading path is true of all its text.

Invariants the tests hold: ``chunk.text == document.text[chunk.start:chunk.end]``; the same
document and options give the same ids and hashes; the hash is of what is embedded (the text
and the heading path), so a chunk that only moved keeps its hash, and its vector can be kept.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from rung.errors import SpecError
from rung.rag.documents import Document, Heading

__all__ = [
    "Chunk",
    "ChunkOptions",
    "chunk_document",
    "chunk_documents",
    "content_hash",
    "embed_text",
    "token_spans",
]

_TOKEN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class ChunkOptions:
    tokens: int = 256
    overlap: int = 32

    def __post_init__(self) -> None:
        if self.tokens < 8:
            raise SpecError(f"--chunk-tokens must be at least 8 (got {self.tokens})")
        if not 0 <= self.overlap < self.tokens // 2 + 1:
            raise SpecError(
                f"--overlap must be between 0 and half of --chunk-tokens ({self.tokens // 2}); "
                f"got {self.overlap}"
            )


@dataclass(frozen=True)
class Chunk:
    """A piece of a document, as stored in an index."""

    id: str
    source: str
    record: str | None
    ordinal: int
    text: str
    start: int
    end: int
    headings: tuple[str, ...]
    hash: str

    @property
    def embed_text(self) -> str:
        return embed_text(self.text, self.headings)


def embed_text(text: str, headings: tuple[str, ...]) -> str:
    """What the embedding model reads: the heading path, then the text. A chunk from the
    middle of a long section keeps the context its heading gives."""
    return " > ".join(headings) + "\n\n" + text if headings else text


def token_spans(text: str, offset: int = 0) -> list[tuple[int, int]]:
    return [(m.start() + offset, m.end() + offset) for m in _TOKEN.finditer(text)]


def _sections(document: Document) -> Iterator[tuple[int, int, tuple[str, ...]]]:
    """(start, end, heading path) of each stretch between two headings."""
    base = (document.title,) if document.title else ()
    heads = sorted(document.headings, key=lambda h: h.start)
    stack: list[Heading] = []
    bounds = [0, *[h.start for h in heads], len(document.text)]
    paths: list[tuple[str, ...]] = [base]
    for heading in heads:
        while stack and stack[-1].level >= heading.level:
            stack.pop()
        stack.append(heading)
        paths.append(base + tuple(h.title for h in stack))
    for i, path in enumerate(paths):
        if bounds[i + 1] > bounds[i]:
            yield bounds[i], bounds[i + 1], path


def content_hash(embed_text: str) -> str:
    return hashlib.sha256(embed_text.encode("utf-8")).hexdigest()[:32]


def chunk_document(document: Document, options: ChunkOptions) -> list[Chunk]:
    chunks: list[Chunk] = []
    step = options.tokens - options.overlap
    prefix = document.source if document.record is None else f"{document.source}#{document.record}"
    for start, end, path in _sections(document):
        spans = token_spans(document.text[start:end], start)
        i = 0
        while i < len(spans):
            window = spans[i : i + options.tokens]
            a, b = window[0][0], window[-1][1]
            text = document.text[a:b]
            n = len(chunks)
            digest = content_hash(embed_text(text, path))
            chunks.append(
                Chunk(
                    f"{prefix}#{n}", document.source, document.record, n, text, a, b, path, digest
                )
            )
            if i + options.tokens >= len(spans):
                break
            i += step
    return chunks


def chunk_documents(documents: Iterable[Document], options: ChunkOptions) -> list[Chunk]:
    return [c for d in documents for c in chunk_document(d, options)]
