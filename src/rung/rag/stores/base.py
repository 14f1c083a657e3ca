"""The vector store contract every store implements, and what flows through it.

A store holds the chunks of one index with their vectors, and the index's ``IndexMeta`` (which
embedding model made the vectors). Writes happen inside ``writing(meta)``, which is atomic
where the database allows it (SQLite, PostgreSQL): an index build that is interrupted leaves the
index as it was. Reads need no context.

Scores are "higher is better" everywhere: cosine similarity for ``knn``, the store's full-text
rank for ``keyword``, the reciprocal-rank-fusion score for ``hybrid``. Stores without a native
hybrid search fuse ``knn`` and ``keyword`` with the one ``rrf`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from rung.rag.chunking import Chunk

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "RRF_K",
    "Hit",
    "IndexMeta",
    "SearchFilter",
    "StoreStats",
    "StoredChunk",
    "VectorStore",
    "fuse_hybrid",
    "rrf",
]

#: the rank constant of reciprocal rank fusion (Cormack et al. 2009 found 60 works across runs)
RRF_K = 60
#: candidates each list contributes to a hybrid search, per result asked for
HYBRID_DEPTH = 4


@dataclass(frozen=True)
class IndexMeta:
    """What an index was built with. A query must be embedded by the same model."""

    model_id: str
    fingerprint: str
    dimension: int
    chunk_tokens: int
    overlap: int
    #: the options the model was created with: a query is embedded with the same ones
    model_options: dict[str, Any] = field(default_factory=dict)
    rung_version: str = ""
    updated_at: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> IndexMeta:
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


@dataclass(frozen=True)
class SearchFilter:
    """Which chunks a search may return: those of the given sources (None: all)."""

    sources: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return self.sources is None


@dataclass(frozen=True)
class StoredChunk:
    """What re-indexing needs to know of a chunk already in the store."""

    source: str
    hash: str
    start: int
    end: int


@dataclass(frozen=True)
class Hit:
    chunk: Chunk
    score: float


@dataclass(frozen=True)
class StoreStats:
    url: str
    chunks: int
    sources: int
    dimension: int | None
    size_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class VectorStore(Protocol):
    """An index's chunks and vectors in a database. Open one with ``open_store(url)``."""

    url: str

    def read_meta(self) -> IndexMeta | None:
        """The index's meta, or None when nothing was ever written."""
        ...

    def writing(self, meta: IndexMeta) -> AbstractContextManager[None]:
        """A batch of writes that ends by recording ``meta``; all or nothing where the store
        can (SQLite, PostgreSQL)."""
        ...

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        """Insert or replace ``chunks`` (by id) with their vectors (one row each)."""
        ...

    def delete(self, ids: Sequence[str]) -> int:
        """Remove the chunks with these ids; returns how many there were."""
        ...

    def delete_sources(self, sources: Sequence[str]) -> int:
        """Remove every chunk of these sources; returns how many there were."""
        ...

    def hashes(self) -> dict[str, StoredChunk]:
        """Every chunk id with its source, content hash and offsets, for re-indexing."""
        ...

    def vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """The stored vectors of these chunks (those that exist), for re-indexing: a chunk
        whose text only moved keeps its vector instead of being embedded again."""
        ...

    def knn(
        self, vector: NDArray[np.float32], k: int, filter: SearchFilter | None = None
    ) -> list[Hit]:
        """The k nearest chunks by cosine similarity."""
        ...

    def keyword(self, query: str, k: int, filter: SearchFilter | None = None) -> list[Hit]:
        """The k best chunks by full-text rank (BM25 or the store's own)."""
        ...

    def hybrid(
        self,
        query: str,
        vector: NDArray[np.float32],
        k: int,
        filter: SearchFilter | None = None,
    ) -> list[Hit]:
        """Vector and keyword search fused (reciprocal rank fusion unless the store has a
        native hybrid)."""
        ...

    def stats(self) -> StoreStats: ...

    def close(self) -> None: ...


def rrf(rankings: Sequence[Sequence[Hit]], k: int, *, constant: int = RRF_K) -> list[Hit]:
    """Reciprocal rank fusion: each chunk scores the sum of 1 / (constant + rank) over the
    lists it appears in (rank from 1); the k best, ties broken by first appearance."""
    scores: dict[str, float] = {}
    chunks: dict[str, Chunk] = {}
    for ranking in rankings:
        for rank, hit in enumerate(ranking, 1):
            scores[hit.chunk.id] = scores.get(hit.chunk.id, 0.0) + 1.0 / (constant + rank)
            chunks.setdefault(hit.chunk.id, hit.chunk)
    order = sorted(scores, key=lambda cid: -scores[cid])  # sorted() is stable
    return [Hit(chunks[cid], scores[cid]) for cid in order[:k]]


def fuse_hybrid(
    knn: Callable[[int], list[Hit]], keyword: Callable[[int], list[Hit]], k: int
) -> list[Hit]:
    """The hybrid search of a store without a native one: ``HYBRID_DEPTH * k`` candidates (at
    least 20) from each search, fused by ``rrf``."""
    depth = max(20, HYBRID_DEPTH * k)
    return rrf([knn(depth), keyword(depth)], k)


def batched(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def query_terms(query: str, limit: int = 64) -> list[str]:
    """The distinct words of a question, for a keyword search that ORs them: an AND of every
    word of a natural-language question finds almost nothing."""
    import re

    seen = dict.fromkeys(w.casefold() for w in re.findall(r"\w+", query))
    return list(seen)[:limit]
