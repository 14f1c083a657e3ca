"""Opening an index and asking it: the query is embedded by the model the index was built
with, and nothing else.

    retriever = Retriever.open("indexes/faq")           # a folder, a .db file or a store URL
    hits = retriever.search("How do I return an item?", k=5, mode="hybrid")

An index is named by the folder ``rung index --out`` wrote (``index.db`` inside, or
``index.json`` pointing at a server store), by a ``.db`` file, or by a store URL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from rung.errors import DataError
from rung.rag.embedding import Embedder
from rung.rag.stores import (
    Hit,
    IndexMeta,
    SearchFilter,
    VectorStore,
    open_store,
    redact,
    sqlite_url,
)

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = [
    "INDEX_DB",
    "INDEX_JSON",
    "MODES",
    "Mode",
    "Retriever",
    "index_location",
    "store_url_for",
    "write_pointer",
]

INDEX_DB = "index.db"
#: in an index folder whose chunks live in a server store: {"store": URL without password}
INDEX_JSON = "index.json"
Mode = Literal["hybrid", "vector", "keyword"]
MODES: tuple[Mode, ...] = ("hybrid", "vector", "keyword")


def store_url_for(out: Path, store: str | None) -> str:
    """The store an index folder uses: ``store`` when given, else its own SQLite file."""
    return store if store else sqlite_url(out / INDEX_DB)


def write_pointer(out: Path, store_url: str) -> None:
    """Record in the index folder which server store holds its chunks (atomically)."""
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / f".{INDEX_JSON}.tmp"
    tmp.write_text(json.dumps({"store": redact(store_url)}, indent=2) + "\n", encoding="utf-8")
    tmp.replace(out / INDEX_JSON)


def index_location(index: str) -> str:
    """The store URL of what the user named as an index."""
    if "://" in index:
        return index
    path = Path(index)
    missing = DataError(f"no index at {index}; build one with `rung index DOCS --out {index}`")
    if path.is_file():
        return sqlite_url(path)
    if not path.is_dir():
        raise missing
    pointer = path / INDEX_JSON
    if pointer.is_file():
        try:
            url = json.loads(pointer.read_text(encoding="utf-8"))["store"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise DataError(
                f"{pointer} is damaged ({type(e).__name__}); run `rung index` again to rewrite it"
            ) from None
        return str(url)
    if (path / INDEX_DB).is_file():
        return sqlite_url(path / INDEX_DB)
    raise missing


def _check(query: str, k: int, sources: Sequence[str] | None) -> SearchFilter | None:
    if not query.strip():
        raise DataError("the question is empty; ask something")
    if k < 1:
        raise DataError(f"k must be at least 1 (got {k})")
    return SearchFilter(tuple(sources)) if sources else None


class Retriever:
    """An index and the embedding model that reads queries for it, loaded once."""

    def __init__(self, store: VectorStore, meta: IndexMeta, embedder: Embedder) -> None:
        self.store = store
        self.meta = meta
        self.embedder = embedder

    @classmethod
    def open(cls, index: str | Path, model_id: str | None = None) -> Retriever:
        """``model_id``, when given, must be the index's own model: querying an index with
        another model's vectors would return noise."""
        url = index_location(str(index))
        store = open_store(url)
        meta = store.read_meta()
        if meta is None:
            store.close()
            raise DataError(
                f"no index at {redact(url)} (nothing was ever indexed there); build one with "
                "`rung index DOCS --out ...`"
            )
        if model_id is not None and model_id != meta.model_id:
            store.close()
            raise DataError(
                f"the index at {index} was built with another embedding model "
                f"({meta.model_id}), not {model_id}: query it with --model {meta.model_id}, or "
                f"index the documents again with --model {model_id} into another --out"
            )
        embedder = Embedder(meta.model_id, meta.model_options)
        if embedder.fingerprint() != meta.fingerprint:
            store.close()
            raise DataError(
                f"the index at {index} was built with {meta.model_id} as it was before its "
                "files changed: its vectors and the model's no longer match; run `rung index` "
                "again to re-embed"
            )
        return cls(store, meta, embedder)

    def search(
        self,
        query: str,
        k: int = 5,
        mode: Mode = "hybrid",
        sources: Sequence[str] | None = None,
    ) -> list[Hit]:
        """The k chunks that best answer ``query``, best first (sync; ``asearch`` in a loop)."""
        filter = _check(query, k, sources)
        if mode == "keyword":
            return self.store.keyword(query, k, filter)
        vector = self.embedder.embed([query])[0]
        return self._by_vector(query, vector, k, mode, filter)

    async def asearch(
        self,
        query: str,
        k: int = 5,
        mode: Mode = "hybrid",
        sources: Sequence[str] | None = None,
    ) -> list[Hit]:
        """``search`` from a running event loop: the query is embedded through the model's
        async contract, the store (a blocking driver) is asked in a worker thread."""
        filter = _check(query, k, sources)
        if mode == "keyword":
            return await asyncio.to_thread(self.store.keyword, query, k, filter)
        vector = (await self.embedder.aembed([query]))[0]
        return await asyncio.to_thread(self._by_vector, query, vector, k, mode, filter)

    def _by_vector(
        self,
        query: str,
        vector: NDArray[np.float32],
        k: int,
        mode: Mode,
        filter: SearchFilter | None,
    ) -> list[Hit]:
        if mode == "vector":
            return self.store.knn(vector, k, filter)
        return self.store.hybrid(query, vector, k, filter)

    def close(self) -> None:
        self.embedder.close()
        self.store.close()
