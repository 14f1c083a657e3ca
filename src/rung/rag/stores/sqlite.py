"""The embedded default store: one SQLite file holding the chunks, a sqlite-vec ``vec0`` table
of their vectors (exact k-nearest-neighbours, cosine) and an FTS5 table of their text (BM25).

The source is a vec0 metadata column, not a partition key: a partition per source file would
split 10k vectors of a hundred files into a hundred small scans (4x slower unfiltered, measured
at 10k x 384), while the metadata column filters inside the one scan.

URL: ``sqlite:///relative/index.db`` or ``sqlite:////absolute/index.db``.

Why apsw: Python's ``sqlite3`` module may be built without ``enable_load_extension`` (this
machine's is), and sqlite-vec is a loadable extension. apsw ships wheels for Linux, macOS and
Windows with its own, current SQLite (FTS5 and JSON compiled in, extension loading on), tracks
SQLite releases within days, and leaves transactions to the caller instead of opening them
behind its back, which is what an all-or-nothing index build wants. (pysqlite3-binary has Linux
wheels only; sqlean-py bundles an older SQLite and extensions rung does not use.)

Atomic writes: a new index is written to a temporary file beside the target and renamed over it
when complete; an existing one is changed inside one transaction (rollback journal), so a
build that dies half-way leaves the previous index as it was, for SQLite itself to restore.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import unquote, urlsplit

from rung.errors import ConfigurationError, DataError, MissingDependencyError, RunError
from rung.rag.chunking import Chunk
from rung.rag.stores.base import (
    Hit,
    IndexMeta,
    SearchFilter,
    StoredChunk,
    StoreStats,
    batched,
    fuse_hybrid,
    query_terms,
)

if TYPE_CHECKING:
    import apsw
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["INSTALL", "SqliteStore", "sqlite_path"]

INSTALL = "pip install 'rung[rag]'"
_COLUMNS = "c.id, c.source, c.record, c.ordinal, c.text, c.start, c.end, c.headings, c.hash"


def sqlite_path(url: str) -> Path:
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc not in ("", "localhost"):
        raise ConfigurationError(
            f"{url!r} is not a SQLite store URL; write sqlite:///relative/index.db or "
            "sqlite:////absolute/index.db"
        )
    path = unquote(parts.path)
    if not path or path == "/":
        raise ConfigurationError(f"{url!r} names no file; write sqlite:///path/index.db")
    # sqlite:///x.db is the relative path x.db; sqlite:////x.db the absolute /x.db
    return Path(path[1:] if path.startswith("/") else path)


def _connect(path: Path, busy_timeout_ms: int) -> apsw.Connection:
    try:
        import apsw
        import sqlite_vec
    except ImportError as e:
        raise MissingDependencyError("the SQLite vector store", INSTALL) from e
    try:
        connection = apsw.Connection(str(path))
        connection.enable_load_extension(True)
        connection.load_extension(sqlite_vec.loadable_path())
        connection.enable_load_extension(False)
        connection.execute("PRAGMA foreign_keys = OFF")
        connection.setbusytimeout(busy_timeout_ms)  # another process is writing: wait a while
    except apsw.Error as e:
        raise DataError(f"cannot open the index {path}: {e}; check the file") from e
    return connection


def _row_chunk(row: Sequence[Any]) -> Chunk:
    cid, source, record, ordinal, text, start, end, headings, digest = row
    return Chunk(
        cid, source, record, ordinal, text, start, end, tuple(json.loads(headings)), digest
    )


class SqliteStore:
    """sqlite-vec + FTS5 in one file."""

    schemes: ClassVar[tuple[str, ...]] = ("sqlite",)
    #: how long a write waits for another process's write to end before giving up
    busy_timeout_ms: int = 10_000

    def __init__(self, url: str) -> None:
        self.url = url
        self.path = sqlite_path(url)
        self._db: apsw.Connection | None = None
        self._dimension: int | None = None

    @classmethod
    def from_url(cls, url: str) -> SqliteStore:
        return cls(url)

    # -- connection ---------------------------------------------------------------------------

    def _conn(self) -> apsw.Connection:
        if self._db is None:
            self._db = _connect(self.path, self.busy_timeout_ms)
        return self._db

    def _has_schema(self, db: apsw.Connection) -> bool:
        row = db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        return bool(row and row[0])

    def read_meta(self) -> IndexMeta | None:
        if not self.path.exists():
            return None
        import apsw

        db = self._conn()
        try:
            if not self._has_schema(db):
                return None
            row = db.execute("SELECT value FROM meta WHERE key = 'index'").fetchone()
        except apsw.NotADBError:
            raise DataError(
                f"{self.path} is not a rung index (not a SQLite database); point at the folder "
                "or file that `rung index` wrote"
            ) from None
        if row is None:
            return None
        meta = IndexMeta.from_json(json.loads(row[0]))
        self._dimension = meta.dimension
        return meta

    def _create_schema(self, db: apsw.Connection, dimension: int) -> None:
        db.execute(
            f"""
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE chunks (
                rowid INTEGER PRIMARY KEY,
                id TEXT NOT NULL UNIQUE,
                source TEXT NOT NULL,
                record TEXT,
                ordinal INTEGER NOT NULL,
                text TEXT NOT NULL,
                start INTEGER NOT NULL,
                "end" INTEGER NOT NULL,
                headings TEXT NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE INDEX chunks_source ON chunks (source);
            CREATE VIRTUAL TABLE chunks_vec USING vec0(
                embedding float[{int(dimension)}] distance_metric=cosine,
                source TEXT
            );
            CREATE VIRTUAL TABLE chunks_fts USING fts5(
                headings, text, tokenize = 'porter unicode61'
            );
            """
        )

    @contextlib.contextmanager
    def writing(self, meta: IndexMeta) -> Iterator[None]:
        import apsw

        if self.path.exists():
            self.read_meta()  # a foreign file fails here, before anything is changed
            db = self._conn()
            try:
                with db:  # one transaction: committed when the block ends, rolled back otherwise
                    if not self._has_schema(db):
                        self._create_schema(db, meta.dimension)
                    self._dimension = meta.dimension
                    yield
                    self._write_meta(db, meta)
            except apsw.BusyError:
                raise RunError(
                    f"another process has been writing {self.path} for over "
                    f"{self.busy_timeout_ms / 1000:g} s; let it finish, then run `rung index` again"
                ) from None
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=self.path.parent
        )
        os.close(fd)
        tmp_path = Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        tmp_path.chmod(0o666 & ~umask)  # mkstemp makes it 0600; the index is an ordinary file
        try:
            self._db = _connect(tmp_path, self.busy_timeout_ms)
            with self._db:
                self._create_schema(self._db, meta.dimension)
                self._dimension = meta.dimension
                yield
                self._write_meta(self._db, meta)
            self._db.close()
            self._db = None
            tmp_path.replace(self.path)  # atomic on one file system
        finally:
            if self._db is not None:
                self._db.close()
                self._db = None
            tmp_path.unlink(missing_ok=True)

    def _write_meta(self, db: apsw.Connection, meta: IndexMeta) -> None:
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('index', ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (json.dumps(meta.to_json()),),
        )

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        import numpy as np

        db = self._conn()
        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        self.delete([c.id for c in chunks])
        blobs = np.ascontiguousarray(vectors, dtype=np.float32)
        cursor = db.cursor()
        for batch_start in range(0, len(chunks), 1000):
            batch = chunks[batch_start : batch_start + 1000]
            rows = [
                (
                    c.id,
                    c.source,
                    c.record,
                    c.ordinal,
                    c.text,
                    c.start,
                    c.end,
                    json.dumps(list(c.headings), ensure_ascii=False),
                    c.hash,
                )
                for c in batch
            ]
            for row, chunk, vector in zip(
                rows, batch, blobs[batch_start : batch_start + len(batch)], strict=True
            ):
                cursor.execute(
                    'INSERT INTO chunks (id, source, record, ordinal, text, start, "end", '
                    "headings, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
                rowid = db.last_insert_rowid()
                cursor.execute(
                    "INSERT INTO chunks_vec (rowid, source, embedding) VALUES (?, ?, ?)",
                    (rowid, chunk.source, vector.tobytes()),
                )
                cursor.execute(
                    "INSERT INTO chunks_fts (rowid, headings, text) VALUES (?, ?, ?)",
                    (rowid, " ".join(chunk.headings), chunk.text),
                )

    def _delete_rowids(self, rowids: list[int]) -> None:
        db = self._conn()
        for batch in batched(rowids, 500):
            marks = ",".join("?" * len(batch))
            for table in ("chunks_vec", "chunks_fts", "chunks"):
                db.execute(f"DELETE FROM {table} WHERE rowid IN ({marks})", tuple(batch))

    def delete(self, ids: Sequence[str]) -> int:
        db = self._conn()
        rowids: list[int] = []
        for batch in batched(list(ids), 500):
            marks = ",".join("?" * len(batch))
            rowids += [
                r[0]
                for r in db.execute(f"SELECT rowid FROM chunks WHERE id IN ({marks})", tuple(batch))
            ]
        self._delete_rowids(rowids)
        return len(rowids)

    def delete_sources(self, sources: Sequence[str]) -> int:
        db = self._conn()
        rowids = [
            r[0]
            for r in db.execute(
                "SELECT rowid FROM chunks WHERE source IN (SELECT value FROM json_each(?))",
                (json.dumps(list(sources)),),
            )
        ]
        self._delete_rowids(rowids)
        return len(rowids)

    # -- reads --------------------------------------------------------------------------------

    def _ready(self) -> apsw.Connection | None:
        """The connection, or None for an index with nothing in it yet."""
        if self._dimension is None and self.read_meta() is None:
            return None
        return self._conn()

    def hashes(self) -> dict[str, StoredChunk]:
        db = self._ready()
        if db is None:
            return {}
        rows = db.execute('SELECT id, source, hash, start, "end" FROM chunks')
        return {cid: StoredChunk(src, h, a, b) for cid, src, h, a, b in rows}

    def vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        import numpy as np

        db = self._ready()
        found: dict[str, NDArray[np.float32]] = {}
        if db is None:
            return found
        for batch in batched(list(ids), 500):
            marks = ",".join("?" * len(batch))
            for cid, blob in db.execute(
                f"SELECT c.id, v.embedding FROM chunks c JOIN chunks_vec v ON v.rowid = c.rowid "
                f"WHERE c.id IN ({marks})",
                tuple(batch),
            ):
                found[cid] = np.frombuffer(blob, dtype=np.float32).copy()
        return found

    def _source_clause(
        self, filter: SearchFilter | None, column: str
    ) -> tuple[str, tuple[Any, ...]]:
        if filter is None or filter.sources is None:
            return "", ()
        return f" AND {column} IN (SELECT value FROM json_each(?))", (
            json.dumps(list(filter.sources)),
        )

    def knn(
        self, vector: NDArray[np.float32], k: int, filter: SearchFilter | None = None
    ) -> list[Hit]:
        import numpy as np

        db = self._ready()
        if db is None or k <= 0:
            return []
        clause, params = self._source_clause(filter, "v.source")
        query = np.ascontiguousarray(vector, dtype=np.float32).tobytes()
        rows: list[Any] = db.execute(
            f"SELECT {_COLUMNS}, v.distance FROM chunks_vec v JOIN chunks c ON c.rowid = v.rowid "
            f"WHERE v.embedding MATCH ? AND k = ?{clause} ORDER BY v.distance",
            (query, int(k), *params),
        ).fetchall()
        return [Hit(_row_chunk(r[:-1]), 1.0 - float(r[-1])) for r in rows]

    def keyword(self, query: str, k: int, filter: SearchFilter | None = None) -> list[Hit]:
        db = self._ready()
        terms = query_terms(query)
        if db is None or k <= 0 or not terms:
            return []
        match = " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)
        clause, params = self._source_clause(filter, "c.source")
        rows: list[Any] = db.execute(
            f"SELECT {_COLUMNS}, bm25(chunks_fts) AS rank FROM chunks_fts f "
            f"JOIN chunks c ON c.rowid = f.rowid WHERE chunks_fts MATCH ?{clause} "
            "ORDER BY rank LIMIT ?",
            (match, *params, int(k)),
        ).fetchall()
        # FTS5's bm25() is negative, lower is better; the contract says higher is better.
        return [Hit(_row_chunk(r[:-1]), -float(r[-1])) for r in rows]

    def hybrid(
        self,
        query: str,
        vector: NDArray[np.float32],
        k: int,
        filter: SearchFilter | None = None,
    ) -> list[Hit]:
        return fuse_hybrid(
            lambda n: self.knn(vector, n, filter), lambda n: self.keyword(query, n, filter), k
        )

    def stats(self) -> StoreStats:
        meta = self.read_meta()
        if meta is None:
            return StoreStats(
                self.url, 0, 0, None, self.path.stat().st_size if self.path.exists() else None
            )
        db = self._conn()
        row = db.execute("SELECT count(*), count(DISTINCT source) FROM chunks").fetchone()
        assert row is not None
        chunks, sources = row
        return StoreStats(
            self.url, int(chunks), int(sources), meta.dimension, self.path.stat().st_size
        )

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
