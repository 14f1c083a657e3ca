"""The key and usage ledger: SQLAlchemy Core over any database URL.

SQLite under the cache folder by default; PostgreSQL (``postgresql://...``, driven by psycopg 3)
when several server replicas must share keys, spend and usage. Two tables, prefixed so they can
live in a database shared with other applications:

- ``rung_keys``: one row per API key: its public id, name, salt and SHA-256 hash of the secret
  (never the secret), its limits and when it was revoked;
- ``rung_usage``: one row per served request: when, which key, endpoint, model, the rung that
  answered, tokens, cost, latency and HTTP status.

The API is synchronous (the CLI uses it as is). The server calls it through ``Ledger.run``,
which runs every database call on one thread, so that writes and the sums read back never
interleave and the event loop never waits on the database.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from rung.errors import ConfigurationError, MissingDependencyError

__all__ = ["KeyRecord", "Ledger", "UsageRow", "UsageTotals", "normalize_url"]

T = TypeVar("T")
INSTALL = "pip install 'rung[serve]'"


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
        try:
            self.meta.create_all(self.engine)
        except sa.exc.SQLAlchemyError as e:
            raise ConfigurationError(
                f"cannot open the ledger database {_safe(self.url)}: {_first_line(e)}; check the "
                "URL, that the server is up, and the credentials"
            ) from None
        self._executor: ThreadPoolExecutor | None = None

    # -- async access for the server ------------------------------------------------------------

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run a ledger call on the ledger's one thread."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rung-ledger")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
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
