"""The key and usage ledger: SQLAlchemy Core over any database URL.

SQLite under the cache folder by default; PostgreSQL (``postgresql://...``, driven by psycopg 3)
when several server replicas must share keys, spend, usage and rate limits. Three tables,
prefixed so they can live in a database shared with other applications:

- ``rung_keys``: one row per API key: its public id, name, salt and SHA-256 hash of the secret
  (never the secret), its limits and when it was revoked;
- ``rung_usage``: one row per served request: when, which key, endpoint, model, the rung that
  answered, tokens, cost, latency and HTTP status;
- ``rung_rate``: when rate limits are shared by replicas (``rung.serve.auth.SharedRate``), one
  row per key that made a request lately: the time its token bucket is full again; rows of
  keys whose bucket is full are pruned now and then.

The API is synchronous (the CLI uses it as is). The server calls it through ``Ledger.run``,
which runs every key and usage call on one thread, so that writes and the sums read back never
interleave and the event loop never waits on the database; and ``Ledger.run_rate``, which runs
the rate counts on a second thread, so that a request's admission never queues behind a batch
of usage rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rung.errors import ConfigurationError, MissingDependencyError

__all__ = ["KeyRecord", "Ledger", "UsageRow", "UsageTotals", "normalize_url"]

T = TypeVar("T")
INSTALL = "pip install 'rung[serve]'"
#: SQLite learned INSERT ... RETURNING in 3.35
SQLITE_RETURNING = (3, 35, 0)


@dataclass(frozen=True)
class KeyRecord:
    id: str
    name: str
    salt: str
    hash: str
    rpm: int | None
    budget_usd: float | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class UsageRow:
    ts: datetime
    key_id: str | None
    endpoint: str
    model: str
    rung: str | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    latency_ms: float
    status: int


@dataclass(frozen=True)
class UsageTotals:
    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float
    by_model: dict[str, tuple[int, float]]  # model -> (requests, cost)
    by_rung: dict[str, int]  # rung that answered -> requests


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (SQLAlchemy's default driver is psycopg2)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; every time in the ledger is UTC.
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class Ledger:
    def __init__(self, url: str) -> None:
        try:
            import sqlalchemy as sa
        except ImportError as e:
            raise MissingDependencyError("rung serve's ledger", INSTALL) from e
        self.url = normalize_url(url)
        if (
            self.url.startswith("postgresql+psycopg")
            and importlib.util.find_spec("psycopg") is None
        ):
            raise MissingDependencyError("a PostgreSQL ledger", "pip install 'psycopg[binary]'")
        if self.url.startswith("sqlite:///") and self.url != "sqlite:///:memory:":
            Path(self.url.removeprefix("sqlite:///")).expanduser().parent.mkdir(
                parents=True, exist_ok=True
            )
        try:
            self.engine = sa.create_engine(self.url)
        except (sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as e:
            raise ConfigurationError(
                f"cannot use the ledger URL {_safe(self.url)!r}: {e}; give an SQLAlchemy URL "
                "such as sqlite:///usage.db or postgresql://user:pass@host/db"
            ) from None
        if self.engine.dialect.name == "sqlite":
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        self.meta = sa.MetaData()
        self.keys = sa.Table(
            "rung_keys",
            self.meta,
            sa.Column("id", sa.String(32), primary_key=True),
            sa.Column("name", sa.String(200), nullable=False, index=True),
            sa.Column("salt", sa.String(64), nullable=False),
            sa.Column("hash", sa.String(128), nullable=False),
            sa.Column("rpm", sa.Integer, nullable=True),
            sa.Column("budget_usd", sa.Float, nullable=True),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        )
        self.usage = sa.Table(
            "rung_usage",
            self.meta,
            sa.Column(
                "id",
                sa.BigInteger().with_variant(sa.Integer, "sqlite"),
                primary_key=True,
                autoincrement=True,
            ),
            sa.Column("ts", sa.DateTime(timezone=True), nullable=False, index=True),
            sa.Column("key_id", sa.String(32), nullable=True, index=True),
            sa.Column("endpoint", sa.String(64), nullable=False),
            sa.Column("model", sa.String(200), nullable=False),
            sa.Column("rung", sa.String(400), nullable=True),
            sa.Column("tokens_in", sa.Integer, nullable=False),
            sa.Column("tokens_out", sa.Integer, nullable=False),
            sa.Column("cost_usd", sa.Float, nullable=False),
            sa.Column("latency_ms", sa.Float, nullable=False),
            sa.Column("status", sa.Integer, nullable=False),
        )
        self.rate = sa.Table(
            "rung_rate",
            self.meta,
            sa.Column("key_id", sa.String(32), primary_key=True),
            # microseconds since 1970 at which the key's token bucket is full again (GCRA's
            # "theoretical arrival time"); integers, so that SQLite and PostgreSQL divide alike
            sa.Column("full_at", sa.BigInteger, nullable=False),
            # what the last statement admitted: RETURNING gives new values only, and the time
            # alone cannot tell "filled up by this batch" from "already empty"
            sa.Column("taken", sa.Integer, nullable=False),
        )
        try:
            self.meta.create_all(self.engine)
        except sa.exc.SQLAlchemyError as e:
            raise ConfigurationError(
                f"cannot open the ledger database {_safe(self.url)}: {_first_line(e)}; check the "
                "URL, that the server is up, and the credentials"
            ) from None
        self._executor: ThreadPoolExecutor | None = None
        self._rate_executor: ThreadPoolExecutor | None = None
        self._take: Any = None  # the statement of take_requests, built on first use
        self._counting: Any = None  # the engine of the rate counts, made on first use
        # ... and its one connection, in autocommit: an upsert is atomic on its own, and a
        # pool checkout plus BEGIN and COMMIT round trips per request cost more than the
        # upsert (210 µs a request against a local PostgreSQL, instead of 85)
        self._counter: Any = None
        self._counter_lock = threading.Lock()

    # -- async access for the server ------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a key or usage call on the ledger's one thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rung-ledger")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def run_rate(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a rate-count call on the ledger's rate thread."""
        if self._rate_executor is None:
            self._rate_executor = ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="rung-ledger-rate"
            )
        return await asyncio.get_running_loop().run_in_executor(self._rate_executor, fn, *args)

    def close(self) -> None:
        for executor in (self._executor, self._rate_executor):
            if executor is not None:
                executor.shutdown(wait=True)
        self._executor = self._rate_executor = None
        with self._counter_lock:
            if self._counter is not None:
                self._counter.close()
                self._counter = None
        if self._counting is not None and self._counting is not self.engine:
            self._counting.dispose()
        self.engine.dispose()

    # -- keys -----------------------------------------------------------------------------------

    def add_key(self, record: KeyRecord) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.keys.insert().values(
                    id=record.id,
                    name=record.name,
                    salt=record.salt,
                    hash=record.hash,
                    rpm=record.rpm,
                    budget_usd=record.budget_usd,
                    created_at=record.created_at,
                    revoked_at=record.revoked_at,
                )
            )

    def get_key(self, key_id: str) -> KeyRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(self.keys.select().where(self.keys.c.id == key_id)).first()
        return _key(row) if row is not None else None

    def list_keys(self, include_revoked: bool = False) -> list[KeyRecord]:
        query = self.keys.select().order_by(self.keys.c.created_at)
        if not include_revoked:
            query = query.where(self.keys.c.revoked_at.is_(None))
        with self.engine.connect() as conn:
            return [_key(row) for row in conn.execute(query)]

    def find_keys(self, id_or_name: str) -> list[KeyRecord]:
        """Active keys whose id or name is ``id_or_name`` (a key id may be given as rk-<id>)."""
        wanted = id_or_name.removeprefix("rk-").split("-", 1)[0]
        with self.engine.connect() as conn:
            rows = conn.execute(
                self.keys.select().where(
                    ((self.keys.c.id == wanted) | (self.keys.c.name == id_or_name))
                    & self.keys.c.revoked_at.is_(None)
                )
            ).all()
        return [_key(row) for row in rows]

    def revoke_key(self, key_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                self.keys.update()
                .where(self.keys.c.id == key_id)
                .values(revoked_at=datetime.now(UTC))
            )

    # -- usage ----------------------------------------------------------------------------------

    def record(self, rows: Sequence[UsageRow]) -> dict[str, float]:
        """Write ``rows``; return the spend recorded so far of each key they name."""
        import sqlalchemy as sa

        if not rows:
            return {}
        keys = sorted({r.key_id for r in rows if r.key_id is not None})
        with self.engine.begin() as conn:
            conn.execute(self.usage.insert(), [r.__dict__ for r in rows])
            if not keys:
                return {}
            spent = conn.execute(
                sa.select(
                    self.usage.c.key_id, sa.func.coalesce(sa.func.sum(self.usage.c.cost_usd), 0.0)
                )
                .where(self.usage.c.key_id.in_(keys))
                .group_by(self.usage.c.key_id)
            ).all()
        return {str(k): float(v) for k, v in spent}

    def spent(self, key_id: str) -> float:
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            value = conn.execute(
                sa.select(sa.func.coalesce(sa.func.sum(self.usage.c.cost_usd), 0.0)).where(
                    self.usage.c.key_id == key_id
                )
            ).scalar_one()
        return float(value)

    def rows(self, key_id: str | None = None, limit: int = 1000) -> list[UsageRow]:
        query = self.usage.select().order_by(self.usage.c.id.desc()).limit(limit)
        if key_id is not None:
            query = query.where(self.usage.c.key_id == key_id)
        with self.engine.connect() as conn:
            found = conn.execute(query).all()
        return [
            UsageRow(
                ts=_aware(r.ts) or r.ts,
                key_id=r.key_id,
                endpoint=r.endpoint,
                model=r.model,
                rung=r.rung,
                tokens_in=r.tokens_in,
                tokens_out=r.tokens_out,
                cost_usd=r.cost_usd,
                latency_ms=r.latency_ms,
                status=r.status,
            )
            for r in reversed(found)
        ]

    def totals(self, key_id: str | None = None, since: datetime | None = None) -> UsageTotals:
        """Requests, tokens and cost, all keys or one, since a time or ever."""
        import sqlalchemy as sa

        u = self.usage
        where = []
        if key_id is not None:
            where.append(u.c.key_id == key_id)
        if since is not None:
            where.append(u.c.ts >= since)
        with self.engine.connect() as conn:
            per_model = conn.execute(
                sa.select(
                    u.c.model,
                    sa.func.count(),
                    sa.func.coalesce(sa.func.sum(u.c.tokens_in), 0),
                    sa.func.coalesce(sa.func.sum(u.c.tokens_out), 0),
                    sa.func.coalesce(sa.func.sum(u.c.cost_usd), 0.0),
                )
                .where(*where)
                .group_by(u.c.model)
            ).all()
            per_rung = conn.execute(
                sa.select(u.c.rung, sa.func.count())
                .where(*where, u.c.rung.is_not(None))
                .group_by(u.c.rung)
            ).all()
        return UsageTotals(
            requests=sum(int(r[1]) for r in per_model),
            tokens_in=sum(int(r[2]) for r in per_model),
            tokens_out=sum(int(r[3]) for r in per_model),
            cost_usd=sum(float(r[4]) for r in per_model),
            by_model={str(r[0]): (int(r[1]), float(r[4])) for r in per_model},
            by_rung={str(r[0]): int(r[1]) for r in per_rung},
        )

    # -- shared rate counts ---------------------------------------------------------------------

    def shared_counts_problem(self) -> str | None:
        """Why this database cannot hold rate counts that replicas share, or None if it can."""
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            return None
        if dialect != "sqlite":
            return f"rate counts shared by replicas need PostgreSQL or SQLite, not {dialect}"
        if self.url in ("sqlite://", "sqlite:///:memory:"):
            return "an in-memory SQLite ledger belongs to one process: it cannot be shared"
        import sqlite3

        if sqlite3.sqlite_version_info < SQLITE_RETURNING:
            return (
                f"SQLite {sqlite3.sqlite_version} is older than 3.35, which shared rate counts "
                "need (INSERT ... RETURNING)"
            )
        return None

    def take_requests(
        self, now_us: int, asks: Sequence[tuple[str, int, int, int]]
    ) -> dict[str, tuple[int, int]]:
        """Take requests from the keys' token buckets at ``now_us`` (microseconds since 1970):
        for each (key id, wanted, interval, burst), as many of ``wanted`` as the bucket holds,
        where a bucket gains a request every ``interval`` µs and holds ``burst // interval`` at
        most (a key never seen holds that many). Returns, per key, (the time its bucket is
        full again after this, how many were taken).

        One upsert per key, atomic in PostgreSQL and SQLite alike: replicas taking from the
        same bucket at the same moment each get their own share, never more than it holds.
        Only what is taken counts."""
        if self._take is None:
            self._take = _take_statement(self.rate, self.engine.dialect.name)
        taken: dict[str, tuple[int, int]] = {}
        with self._counting_connection() as conn:
            for key_id, wanted, interval, burst in asks:
                first = min(wanted, burst // interval)
                full_at, admitted = conn.execute(
                    self._take,
                    {
                        "key_id": key_id,
                        "now": now_us,
                        "wanted": wanted,
                        "interval": interval,
                        "burst": burst,
                        "first": first,
                        "first_full_at": now_us + first * interval,
                    },
                ).one()
                taken[key_id] = (int(full_at), int(admitted))
        return taken

    def prune_request_counts(self, now_us: int) -> int:
        """Forget the buckets that are full by ``now_us`` (a missing row means a full bucket);
        how many rows went."""
        with self._counting_connection() as conn:
            done = conn.execute(self.rate.delete().where(self.rate.c.full_at <= now_us))
        return int(done.rowcount or 0)

    @contextlib.contextmanager
    def _counting_connection(self) -> Iterator[Any]:
        """The rate counts' one connection, for one caller at a time; after an error, a new one
        next time (the database may have gone away and come back)."""
        with self._counter_lock:
            if self._counter is None:
                self._counter = (
                    self._counting_engine()
                    .connect()
                    .execution_options(isolation_level="AUTOCOMMIT")
                )
            try:
                yield self._counter
            except BaseException:
                counter, self._counter = self._counter, None
                with contextlib.suppress(Exception):  # the first error is the one to raise
                    counter.close()
                raise

    def _counting_engine(self) -> Any:
        """The engine of the rate counts. On an SQLite file one of their own, whose commits
        skip the fsync (synchronous=NORMAL; WAL keeps the file consistent): that costs about
        4 ms a request on a plain disk, and a count lost to a power cut only lets a key make a
        few requests more. Keys and usage keep SQLite's full durability."""
        if self._counting is None:
            if self.engine.dialect.name != "sqlite" or self.shared_counts_problem() is not None:
                self._counting = self.engine
            else:
                import sqlalchemy as sa

                self._counting = sa.create_engine(self.url)
                sa.event.listen(self._counting, "connect", _sqlite_pragmas)
                sa.event.listen(self._counting, "connect", _sqlite_no_fsync)
        return self._counting


def _take_statement(t: Any, dialect: str) -> Any:
    """The upsert of ``Ledger.take_requests``, built once: its parameters are bound per call."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import postgresql, sqlite

    # the two spell ON CONFLICT DO UPDATE alike; shared_counts_problem turned the others away
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now, wanted, interval, burst = (
        sa.bindparam(name, type_=sa.BigInteger) for name in ("now", "wanted", "interval", "burst")
    )
    # an empty bucket's full_at is burst ahead of now; a full one's is now or before
    start = sa.case((t.c.full_at > now, t.c.full_at), else_=now)
    # // of non-negative integers floors in both databases
    room = (now + burst - start) // interval
    # CASE, not LEAST/GREATEST, which SQLite lacks; room < 0 only for a replica whose clock
    # runs behind the one that wrote the row
    took = sa.case((room <= 0, sa.literal(0, sa.BigInteger)), (room < wanted, room), else_=wanted)
    return (
        insert(t)
        .values(
            key_id=sa.bindparam("key_id"),
            full_at=sa.bindparam("first_full_at", type_=sa.BigInteger),
            taken=sa.bindparam("first", type_=sa.Integer),
        )
        .on_conflict_do_update(
            index_elements=[t.c.key_id], set_={"full_at": start + took * interval, "taken": took}
        )
        .returning(t.c.full_at, t.c.taken)
    )


def _key(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        name=row.name,
        salt=row.salt,
        hash=row.hash,
        rpm=row.rpm,
        budget_usd=row.budget_usd,
        created_at=_aware(row.created_at) or row.created_at,
        revoked_at=_aware(row.revoked_at),
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets `rung keys` write while a server reads; the timeout rides out brief locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _sqlite_no_fsync(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _safe(url: str) -> str:
    """The URL without its password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, auth = head.partition("://")
    user = auth.split(":", 1)[0]
    return f"{scheme}://{user}:***@{tail}"


def _first_line(e: Exception) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
