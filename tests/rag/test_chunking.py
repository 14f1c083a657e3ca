"""The chunker: every chunk is a slice of its document's text at its own offsets, windows of
tokens overlap as asked, a chunk never spans two sections, ids are stable and hashes follow
the content."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from rung.errors import SpecError
from rung.rag.chunking import ChunkOptions, chunk_document, chunk_documents, token_spans
from rung.rag.documents import Document
from rung.rag.indexer import find_files
from rung.rag.readers import read_path
from rung.rag.readers.text import markdown_headings

LONG = "# Guide\n\n" + " ".join(f"word{i}." for i in range(500)) + "\n\n## Tail\n\nThe end.\n"


def test_every_chunk_is_its_slice_of_the_source(docs: Path) -> None:
    documents = [d for path, src in find_files([docs]) for d in read_path(path, src)]
    chunks = chunk_documents(documents, ChunkOptions(tokens=16, overlap=4))
    by_key = {(d.source, d.record): d for d in documents}
    assert len(chunks) > len(documents)
    for c in chunks:
        doc = by_key[(c.source, c.record)]
        assert c.text == doc.text[c.start : c.end]
        assert c.text == c.text.strip() and c.text
    # for markdown and plain text the offsets are the file's own
    raw = (docs / "returns.md").read_text(encoding="utf-8")
    for c in (c for c in chunks if c.source == "returns.md"):
        assert raw[c.start : c.end] == c.text


def test_windows_overlap_by_the_asked_number_of_tokens() -> None:
    doc = Document("guide.md", LONG, headings=markdown_headings(LONG))
    chunks = [
        c
        for c in chunk_document(doc, ChunkOptions(tokens=64, overlap=16))
        if c.headings == ("Guide",)
    ]
    spans = token_spans(LONG)
    assert len(chunks) > 5
    for a, b in itertools.pairwise(chunks):
        a_tokens = [s for s in spans if a.start <= s[0] and s[1] <= a.end]
        b_tokens = [s for s in spans if b.start <= s[0] and s[1] <= b.end]
        assert len(a_tokens) == 64
        assert a_tokens[-16:] == b_tokens[:16]
    last = [s for s in spans if chunks[-1].start <= s[0] and s[1] <= chunks[-1].end]
    assert 0 < len(last) <= 64


def test_sections_are_never_mixed_and_carry_their_heading_path() -> None:
    doc = Document("guide.md", LONG, headings=markdown_headings(LONG))
    chunks = chunk_document(doc, ChunkOptions(tokens=64, overlap=16))
    tail = [c for c in chunks if c.headings == ("Guide", "Tail")]
    assert len(tail) == 1 and tail[0].text == "## Tail\n\nThe end."
    assert all("## Tail" not in c.text for c in chunks if c.headings == ("Guide",))
    assert tail[0].embed_text == "Guide > Tail\n\n## Tail\n\nThe end."


def test_a_records_title_heads_its_chunks(docs: Path) -> None:
    from rung.rag.documents import ReadOptions

    documents = read_path(docs / "faq.jsonl", "faq.jsonl", ReadOptions(id="id", title="question"))
    chunks = chunk_documents(documents, ChunkOptions())
    assert [(c.id, c.headings) for c in chunks] == [
        ("faq.jsonl#q1#0", ("Do you ship abroad?",)),
        ("faq.jsonl#q2#0", ("Can I pay by card?",)),
    ]


def test_ids_are_stable_and_hashes_follow_the_content() -> None:
    doc = Document("guide.md", LONG, headings=markdown_headings(LONG))
    options = ChunkOptions(tokens=64, overlap=16)
    first, again = chunk_document(doc, options), chunk_document(doc, options)
    assert [(c.id, c.hash) for c in first] == [(c.id, c.hash) for c in again]
    assert len({c.id for c in first}) == len(first)
    edited_text = LONG.replace("word499.", "word499 changed.")
    edited = chunk_document(
        Document("guide.md", edited_text, headings=markdown_headings(edited_text)), options
    )
    changed = [a.id for a, b in zip(first, edited, strict=True) if a.hash != b.hash]
    # the edit is in the last window of the first section; the tail moved but kept its text
    assert changed == [first[-2].id]
    assert edited[-1].hash == first[-1].hash and edited[-1].start > first[-1].start


@pytest.mark.parametrize(("tokens", "overlap"), [(4, 0), (64, 40), (64, -1)])
def test_bad_chunk_options(tokens: int, overlap: int) -> None:
    with pytest.raises(SpecError):
        ChunkOptions(tokens=tokens, overlap=overlap)
