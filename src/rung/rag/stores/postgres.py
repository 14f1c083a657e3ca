"""The server store: PostgreSQL with pgvector (an HNSW index, cosine) and full-text search.

URL: ``postgresql://user[:password]@host:5432/dbname`` with, besides libpq's own parameters:

- ``collection=NAME`` (default ``rung``): the tables are ``NAME_chunks`` and ``NAME_meta``, so
  several indexes share a database;
- ``ef_search=N`` (default 100): HNSW's candidate list; larger finds more true neighbours,
  slower;
- ``exact=true``: scan every vector instead of the HNSW index (exact kNN; for measuring what
  HNSW misses).

The connection sets ``hnsw.iterative_scan = relaxed_order`` (pgvector 0.8), so that a filtered
query keeps scanning the HNSW graph until it has k rows that pass the filter instead of
returning fewer; the rows are sorted again by distance afterwards, as relaxed order asks. Keyword search ranks with
``ts_rank_cd`` over an English ``tsvector`` of each chunk's headings and text.

All the writes of ``writing()`` are one transaction. The HNSW index is built at the end of the
first one, after the bulk load: building it over the loaded table is several times faster than
growing it row by row. Vectors travel in pgvector's binary format (COPY ... FORMAT BINARY),
not as text.
"""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from rung.errors import ConfigurationError, DataError, MissingDependencyError
from rung.rag.chunking import Chunk
from rung.rag.stores.base import (
    Hit,
    IndexMeta,
    SearchFilter,
    StoredChunk,
    StoreStats,
    fuse_hybrid,
    query_terms,
)

if TYPE_CHECKING:
    import numpy as np
    import psycopg
    from numpy.typing import NDArray

__all__ = ["INSTALL", "PgvectorStore"]

INSTALL = "pip install 'rung[rag]'"
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,40}$")
_COLUMNS = "id, source, record, ordinal, text, start_char, end_char, headings, hash"
_COPY_TYPES = ["text", "text", "text", "int4", "text", "int4", "int4", "jsonb", "text"]


def _flag(value: str, name: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(f"store URL parameter {name}={value!r}: write true or false")


class PgvectorStore:
    """pgvector (HNSW) + tsvector in one table per collection."""

    schemes: ClassVar[tuple[str, ...]] = ("postgresql", "postgres")

    def __init__(self, url: str) -> None:
        from rung.rag.stores import redact

        self.url = url
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query))
        collection = params.pop("collection", "rung").lower()
        if not _NAME.match(collection):
            raise ConfigurationError(
                f"collection={collection!r} in {redact(url)}: use letters, digits and _ "
                "(at most 41), starting with a letter"
            )
        self.collection = collection
        try:
            self.ef_search = int(params.pop("ef_search", "100"))
        except ValueError:
            raise ConfigurationError(f"ef_search in {redact(url)} must be an integer") from None
        self.exact = _flag(params.pop("exact", "false"), "exact")
        # libpq knows postgresql:// and postgres://; the rest of the query is libpq's own
        self.conninfo = parts._replace(query=urlencode(params)).geturl()
        self._conn: psycopg.Connection[Any] | None = None
        self._vector_oid: int | None = None
        self._dimension: int | None = None
        self._settings: tuple[int, bool] | None = None

    @classmethod
    def from_url(cls, url: str) -> PgvectorStore:
        return cls(url)

    @property
    def chunks_table(self) -> str:
        return f"{self.collection}_chunks"

    @property
    def meta_table(self) -> str:
        return f"{self.collection}_meta"

    # -- connection ---------------------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        if self._conn is not None:
            return self._conn
        try:
            import psycopg
        except ImportError as e:
            raise MissingDependencyError("the PostgreSQL vector store", INSTALL) from e
        from rung.rag.stores import redact

        try:
            self._conn = psycopg.connect(self.conninfo, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ConfigurationError(
                f"cannot connect to {redact(self.url)}: {reason}; check the URL and that the "
                "server is running"
            ) from None
        return self._conn

    def _register_vector(self, conn: psycopg.Connection[Any]) -> None:
        """pgvector's binary format for numpy float32 vectors: dimension and a reserved word as
        big-endian uint16, then the big-endian float32 values."""
        if self._vector_oid is not None:
            return
        import numpy as np
        from psycopg.adapt import Dumper
        from psycopg.pq import Format
        from psycopg.types import TypeInfo

        info = TypeInfo.fetch(conn, "vector")
        if info is None:
            raise ConfigurationError(
                f"pgvector is not installed in {self._where()}: run CREATE EXTENSION vector as "
                "a superuser, or install pgvector on the server"
            )
        oid = info.oid

        class VectorDumper(Dumper):
            format = Format.BINARY

            def dump(self, obj: Any) -> bytes:
                values = np.asarray(obj, dtype=">f4")
                return struct.pack(">HH", values.shape[0], 0) + values.tobytes()

        VectorDumper.oid = oid
        conn.adapters.register_dumper(np.ndarray, VectorDumper)
        self._vector_oid = oid

    def _where(self) -> str:
        from rung.rag.stores import redact

        return redact(self.url)

    def _table_exists(self, conn: psycopg.Connection[Any], table: str) -> bool:
        row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
        return bool(row and row[0])

    def read_meta(self) -> IndexMeta | None:
        conn = self._connect()
        if not self._table_exists(conn, self.meta_table):
            return None
        row = conn.execute(f"SELECT value FROM {self.meta_table} WHERE key = 'index'").fetchone()
        if row is None:
            return None
        meta = IndexMeta.from_json(row[0])
        self._dimension = meta.dimension
        return meta

    @contextlib.contextmanager
    def writing(self, meta: IndexMeta) -> Iterator[None]:
        import psycopg
        from psycopg.types.json import Jsonb

        conn = self._connect()
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.Error as e:
            raise ConfigurationError(
                f"cannot enable pgvector in {self._where()} ({str(e).strip()}); install pgvector "
                "on the server, or have a superuser run CREATE EXTENSION vector"
            ) from None
        self._register_vector(conn)
        existing = self.read_meta()
        if existing is not None and existing.dimension != meta.dimension:
            raise DataError(
                f"the collection {self.collection!r} in {self._where()} holds "
                f"{existing.dimension}-dimensional vectors, not {meta.dimension}; use another "
                "collection= or drop its tables"
            )
        with conn.transaction():
            conn.execute(
                f"""
                CREATE TABLE IF NOT EXISTS {self.meta_table} (
                    key text PRIMARY KEY, value jsonb NOT NULL);
                CREATE TABLE IF NOT EXISTS {self.chunks_table} (
                    id text PRIMARY KEY,
                    source text NOT NULL,
                    record text,
                    ordinal integer NOT NULL,
                    text text NOT NULL,
                    start_char integer NOT NULL,
                    end_char integer NOT NULL,
                    headings jsonb NOT NULL,
                    hash text NOT NULL,
                    embedding vector({int(meta.dimension)}) NOT NULL,
                    tsv tsvector GENERATED ALWAYS AS (
                        to_tsvector('english', headings::text || ' ' || text)) STORED);
                CREATE INDEX IF NOT EXISTS {self.chunks_table}_source
                    ON {self.chunks_table} (source);
                CREATE INDEX IF NOT EXISTS {self.chunks_table}_tsv
                    ON {self.chunks_table} USING gin (tsv);
                """
            )
            self._dimension = meta.dimension
            yield
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self.chunks_table}_hnsw ON {self.chunks_table} "
                "USING hnsw (embedding vector_cosine_ops)"
            )
            conn.execute(
                f"INSERT INTO {self.meta_table} (key, value) VALUES ('index', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (Jsonb(meta.to_json()),),
            )

    # -- writes -------------------------------------------------------------------------------

    def upsert(self, chunks: Sequence[Chunk], vectors: NDArray[np.float32]) -> None:
        import numpy as np
        from psycopg.types.json import Jsonb

        if len(chunks) != len(vectors):
            raise ValueError(f"{len(chunks)} chunks but {len(vectors)} vectors")
        conn = self._connect()
        self._register_vector(conn)
        self.delete([c.id for c in chunks])
        assert self._vector_oid is not None
        columns = (
            "id, source, record, ordinal, text, start_char, end_char, headings, hash, embedding"
        )
        values = np.asarray(vectors, dtype=np.float32)
        with (
            conn.cursor() as cur,
            cur.copy(f"COPY {self.chunks_table} ({columns}) FROM STDIN (FORMAT BINARY)") as copy,
        ):
            copy.set_types([*_COPY_TYPES, self._vector_oid])
            for chunk, vector in zip(chunks, values, strict=True):
                copy.write_row(
                    (
                        chunk.id,
                        chunk.source,
                        chunk.record,
                        chunk.ordinal,
                        chunk.text,
                        chunk.start,
                        chunk.end,
                        Jsonb(list(chunk.headings)),
                        chunk.hash,
                        vector,
                    )
                )

    def delete(self, ids: Sequence[str]) -> int:
        if not ids:
            return 0
        conn = self._connect()
        if not self._table_exists(conn, self.chunks_table):
            return 0
        cur = conn.execute(f"DELETE FROM {self.chunks_table} WHERE id = ANY(%s)", (list(ids),))
        return cur.rowcount

    def delete_sources(self, sources: Sequence[str]) -> int:
        if not sources:
            return 0
        conn = self._connect()
        if not self._table_exists(conn, self.chunks_table):
            return 0
        cur = conn.execute(
            f"DELETE FROM {self.chunks_table} WHERE source = ANY(%s)", (list(sources),)
        )
        return cur.rowcount

    # -- reads --------------------------------------------------------------------------------

    def _ready(self) -> psycopg.Connection[Any] | None:
        if self._dimension is None and self.read_meta() is None:
            return None
        conn = self._connect()
        self._register_vector(conn)
        return conn

    def hashes(self) -> dict[str, StoredChunk]:
        conn = self._ready()
        if conn is None:
            return {}
        rows = conn.execute(
            f"SELECT id, source, hash, start_char, end_char FROM {self.chunks_table}"
        ).fetchall()
        return {cid: StoredChunk(src, digest, a, b) for cid, src, digest, a, b in rows}

    def vectors(self, ids: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        import numpy as np

        conn = self._ready()
        if conn is None or not ids:
            return {}
        # real[] comes back as a list of floats without a pgvector loader on this side
        rows = conn.execute(
            f"SELECT id, embedding::real[] FROM {self.chunks_table} WHERE id = ANY(%s)",
            (list(ids),),
        ).fetchall()
        return {cid: np.asarray(values, dtype=np.float32) for cid, values in rows}

    @staticmethod
    def _chunk(row: Sequence[Any]) -> Chunk:
        cid, source, record, ordinal, text, start, end, headings, digest = row
        return Chunk(cid, source, record, ordinal, text, start, end, tuple(headings), digest)

    def _where_sources(self, filter: SearchFilter | None) -> tuple[str, tuple[Any, ...]]:
        if filter is None or filter.sources is None:
            return "", ()
        return "WHERE source = ANY(%s)", (list(filter.sources),)

    def _search_settings(self, conn: psycopg.Connection[Any], k: int) -> None:
        """Session settings, sent once per connection (and again for a k above ef_search):
        a SET per query would cost more round trips than the HNSW search itself."""
        ef = max(int(self.ef_search), int(k))
        if self._settings == (ef, self.exact):
            return
        if self.exact:
            conn.execute("SET enable_indexscan = off")
        else:
            # iterative scans matter only when a filter drops rows: unfiltered queries are alike
            conn.execute(f"SET hnsw.ef_search = {ef}; SET hnsw.iterative_scan = relaxed_order")
        self._settings = (ef, self.exact)

    def knn(
        self, vector: NDArray[np.float32], k: int, filter: SearchFilter | None = None
    ) -> list[Hit]:
        import numpy as np

        conn = self._ready()
        if conn is None or k <= 0:
            return []
        where, params = self._where_sources(filter)
        query = np.asarray(vector, dtype=np.float32)
        self._search_settings(conn, k)
        rows = conn.execute(
            f"WITH nearest AS MATERIALIZED (SELECT {_COLUMNS}, embedding <=> %b AS distance "
            f"FROM {self.chunks_table} {where} ORDER BY distance LIMIT %s) "
            "SELECT * FROM nearest ORDER BY distance",
            (query, *params, int(k)),
        ).fetchall()
        return [Hit(self._chunk(r[:-1]), 1.0 - float(r[-1])) for r in rows]

    def keyword(self, query: str, k: int, filter: SearchFilter | None = None) -> list[Hit]:
        conn = self._ready()
        terms = query_terms(query)
        if conn is None or k <= 0 or not terms:
            return []
        where, params = self._where_sources(filter)
        extra = where.replace("WHERE", "AND")
        tsquery = " | ".join(f"'{t}'" for t in terms)
        rows = conn.execute(
            f"SELECT {_COLUMNS}, ts_rank_cd(tsv, q) AS rank "
            f"FROM {self.chunks_table}, to_tsquery('english', %s) q "
            f"WHERE tsv @@ q {extra} ORDER BY rank DESC, id LIMIT %s",
            (tsquery, *params, int(k)),
        ).fetchall()
        return [Hit(self._chunk(r[:-1]), float(r[-1])) for r in rows]

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
        from rung.rag.stores import redact

        meta = self.read_meta()
        if meta is None:
            return StoreStats(redact(self.url), 0, 0, None)
        conn = self._connect()
        row = conn.execute(
            f"SELECT count(*), count(DISTINCT source), "
            f"pg_total_relation_size('{self.chunks_table}') FROM {self.chunks_table}"
        ).fetchone()
        assert row is not None
        return StoreStats(
            redact(self.url),
            int(row[0]),
            int(row[1]),
            meta.dimension,
            int(row[2]),
            {"collection": self.collection, "exact": self.exact, "ef_search": self.ef_search},
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
            self._vector_oid = None
            self._settings = None
