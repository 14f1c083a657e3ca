"""Vector stores, chosen by the scheme of a URL.

    sqlite:///index.db                 sqlite-vec + FTS5 in one file (the embedded default)
    postgresql://user@host:5432/db     PostgreSQL + pgvector (HNSW) + full-text search
    weaviate://host:8080               Weaviate (weaviate-client v4); http(s)://host:port too

Stores register through the ``rung.vector_stores`` entry-point group, as a plugin would
(``myscheme = mypackage.store:MyStore``, a class with ``from_url(url)`` that implements
``VectorStore``); rung's own are entry points made here, so that they work before the package
metadata is reinstalled. A store's module, and its database driver, are imported only when a
URL of its scheme is opened.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from urllib.parse import urlsplit

from rung.errors import ConfigurationError, did_you_mean
from rung.rag.stores.base import (
    Hit,
    IndexMeta,
    SearchFilter,
    StoredChunk,
    StoreStats,
    VectorStore,
    fuse_hybrid,
    rrf,
)

__all__ = [
    "GROUP",
    "Hit",
    "IndexMeta",
    "SearchFilter",
    "StoreStats",
    "StoredChunk",
    "VectorStore",
    "fuse_hybrid",
    "open_store",
    "redact",
    "rrf",
    "schemes",
    "sqlite_url",
]

GROUP = "rung.vector_stores"

_BUILTIN = {
    "sqlite": "rung.rag.stores.sqlite:SqliteStore",
    "postgresql": "rung.rag.stores.postgres:PgvectorStore",
    "postgres": "rung.rag.stores.postgres:PgvectorStore",
    "weaviate": "rung.rag.stores.weaviate:WeaviateStore",
    "weaviate+http": "rung.rag.stores.weaviate:WeaviateStore",
    "weaviate+https": "rung.rag.stores.weaviate:WeaviateStore",
    "http": "rung.rag.stores.weaviate:WeaviateStore",
    "https": "rung.rag.stores.weaviate:WeaviateStore",
}


@cache
def _entry_points() -> dict[str, EntryPoint]:
    found = {name: EntryPoint(name, value, GROUP) for name, value in _BUILTIN.items()}
    found.update({ep.name: ep for ep in entry_points(group=GROUP)})
    return found


def schemes() -> list[str]:
    return sorted(_entry_points())


def sqlite_url(path: Path) -> str:
    """The store URL of a SQLite index file."""
    # sqlite:///rel/index.db is relative, sqlite:////abs/index.db absolute
    return f"sqlite:///{path.expanduser().as_posix()}"


def redact(url: str) -> str:
    """The URL without its password, for messages and for the index folder's record."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
    return parts._replace(netloc=netloc).geturl()


def open_store(url: str) -> VectorStore:
    """The store behind ``url``. Nothing is connected yet; the first read or write connects."""
    scheme = urlsplit(url).scheme.lower()
    eps = _entry_points()
    if not scheme or scheme not in eps:
        raise ConfigurationError(
            f"unknown vector store URL {redact(url)!r}{did_you_mean(scheme, eps)}; use "
            "sqlite:///index.db, postgresql://user@host/db or weaviate://host:8080"
        )
    try:
        cls = eps[scheme].load()
    except ImportError as e:
        raise ConfigurationError(
            f"the {scheme!r} vector store ({eps[scheme].value}) cannot be imported: {e}; "
            "reinstall the package that provides it"
        ) from e
    store = cls.from_url(url)
    if not isinstance(store, VectorStore):
        raise ConfigurationError(
            f"entry point {scheme!r} in group {GROUP!r} does not make a VectorStore"
        )
    return store
