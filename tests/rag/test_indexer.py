"""Incremental indexing through the real bundled MiniLM: a second build embeds only the chunks
of the file that changed and of the file that is new, deletes those of the file that is gone,
and a third build with nothing changed embeds nothing. The texts the model is sent are
counted at the model itself."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from rung.errors import DataError
from rung.models.base import Embeddings
from rung.rag import ChunkOptions, Embedder, Retriever, build_index, chunk_documents, find_files
from rung.rag.readers import read_path
from rung.rag.search import INDEX_DB
from rung.rag.stores import open_store, sqlite_url

OPTIONS = ChunkOptions(tokens=24, overlap=4)


@pytest.fixture
def sent(minilm: Embedder, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the loaded model is asked to embed."""
    texts: list[str] = []
    original = minilm.model.embed

    async def counting(batch: Sequence[str]) -> Embeddings:
        texts.extend(batch)
        return await original(batch)

    monkeypatch.setattr(minilm.model, "embed", counting)
    return texts


def _chunks_of(docs: Path, source: str) -> list[str]:
    path = docs / source
    return [c.embed_text for c in chunk_documents(read_path(path, source), OPTIONS)]


def test_reindex_embeds_only_what_changed(
    docs: Path, tmp_path: Path, minilm: Embedder, sent: list[str]
) -> None:
    store = open_store(sqlite_url(tmp_path / "idx" / INDEX_DB))
    first = build_index([docs], store, chunking=OPTIONS, embedder=minilm)
    assert first.files == 6 and first.chunks == len(sent) == first.embedded
    assert first.unchanged == first.deleted == 0
    assert store.read_meta().model_id == "encoder:minilm-l6"  # type: ignore[union-attr]
    sent.clear()

    # edit the last section of returns.md, add a file, remove another
    returns = docs / "returns.md"
    before = _chunks_of(docs, "returns.md")
    returns.write_text(
        returns.read_text().replace(
            "express takes 1-2.", "express takes 1-2; drones deliver in an hour."
        ),
        encoding="utf-8",
    )
    after = _chunks_of(docs, "returns.md")
    changed = [t for t in after if t not in before]
    (docs / "gifts.md").write_text("# Gifts\n\nWe wrap presents for free.\n", encoding="utf-8")
    (docs / "notes.txt").unlink()
    second = build_index([docs], store, chunking=OPTIONS, embedder=minilm)

    new_file = _chunks_of(docs, "gifts.md")
    assert 0 < len(changed) < len(after)
    assert sorted(sent) == sorted(changed + new_file)
    assert second.embedded == len(sent)
    assert second.removed_sources == ["notes.txt"]
    assert second.deleted >= 1
    assert second.chunks == second.embedded + second.unchanged
    sources = {s.source for s in store.hashes().values()}
    assert "notes.txt" not in sources and "gifts.md" in sources
    sent.clear()

    third = build_index([docs], store, chunking=OPTIONS, embedder=minilm)
    assert third.up_to_date and sent == [] and third.embedded == 0

    # a line added at the top moves every chunk after it (and shifts their ordinals, so their
    # ids): only the new text is embedded, the moved chunks keep their vectors
    before = {c.hash: c for c in chunk_documents(read_path(returns, "returns.md"), OPTIONS)}
    returns.write_text("<!-- reviewed 2026 -->\n" + returns.read_text(), encoding="utf-8")
    after = chunk_documents(read_path(returns, "returns.md"), OPTIONS)
    fourth = build_index([docs], store, chunking=OPTIONS, embedder=minilm)
    moved = [c for c in after if c.hash in before]
    assert len(moved) == len(before) and all(c.start != before[c.hash].start for c in moved)
    assert sent == [c.embed_text for c in after if c.hash not in before]
    assert fourth.embedded == 1 and fourth.reused == len(moved)
    stored = store.hashes()
    for c in after:
        assert (stored[c.id].hash, stored[c.id].start, stored[c.id].end) == (c.hash, c.start, c.end)
    kept = store.vectors([moved[0].id])[moved[0].id]
    fresh = minilm.embed([moved[0].embed_text])[0]
    assert float(kept @ fresh) > 0.9999  # the kept vector is the text's own
    store.close()

    retriever = Retriever(
        open_store(sqlite_url(tmp_path / "idx" / INDEX_DB)), store.read_meta(), minilm
    )  # type: ignore[arg-type]
    hits = retriever.search("Can a drone bring my order?", k=3, mode="vector")
    assert hits[0].chunk.source == "returns.md" and "drones" in hits[0].chunk.text
    # the same from an event loop (a server's): the async path gives the same hits
    for mode in ("vector", "hybrid", "keyword"):
        sync = retriever.search("drone delivery", k=3, mode=mode)  # type: ignore[arg-type]
        async_hits = asyncio.run(retriever.asearch("drone delivery", k=3, mode=mode))  # type: ignore[arg-type]
        assert [h.chunk.id for h in async_hits] == [h.chunk.id for h in sync]
    retriever.store.close()


def test_another_model_cannot_write_into_an_index(
    docs: Path, tmp_path: Path, minilm: Embedder
) -> None:
    store = open_store(sqlite_url(tmp_path / "idx" / INDEX_DB))
    build_index([docs / "notes.txt"], store, embedder=minilm)
    with pytest.raises(
        DataError, match=r"built with another embedding model \(encoder:minilm-l6\)"
    ):
        build_index([docs / "notes.txt"], store, model_id="openai:text-embedding-3-small")
    store.close()


def test_files_are_found_once_and_the_index_folder_is_left_out(docs: Path) -> None:
    (docs / "idx").mkdir()
    (docs / "idx" / "index.json").write_text('{"store": "sqlite:///x.db"}')
    found = [s for _, s in find_files([docs], exclude=docs / "idx")]
    assert "idx/index.json" not in found
