"""API keys, rate limits and budgets: who may call the server, how often, and for how much.

A key reads ``rk-<id>-<secret>``. The id is public (it names the key in `rung keys list` and in
the ledger); the secret is stored only as SHA-256 over a per-key random salt. A fast hash is
right here: the secret is 32 random bytes, not a password, so there is nothing to guess, and a
slow one (scrypt) would add its cost to every request.

The ``Gate`` admits a request (key valid, under its rate limit, under its budget) and logs its
usage. Rate limits are requests per minute per key, counted one of two ways
(``limits.shared_rate_limits``):

- in the ledger (``SharedRate``; the default with PostgreSQL): every replica sharing the ledger
  takes from the same bucket, so a key gets its rate across all of them;
- in this process's memory (``TokenBucket``; the default with SQLite): no database call per
  request, but with N replicas a key gets up to N times its rate.

Both are the same token bucket: a burst of up to rpm requests, then one every 60/rpm seconds.

Budgets are the spend in the ledger, which replicas share: each replica adds its own spend that
is not written yet, and re-reads the ledger every few seconds (``REFRESH_S``), so a key can
overshoot its budget by what other replicas served meanwhile. Revoking a key takes effect within
``REFRESH_S`` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rung.errors import ConfigurationError, SpecError
from rung.serve.config import AuthSpec, LimitsSpec
from rung.serve.errors import ApiError
from rung.serve.ledger import KeyRecord, Ledger, UsageRow

__all__ = [
    "KEY_PREFIX",
    "Gate",
    "Principal",
    "SharedRate",
    "TokenBucket",
    "create_key",
    "hash_secret",
    "parse_key",
    "uses_shared_rate_limits",
]

log = logging.getLogger("rung.serve")

KEY_PREFIX = "rk-"
#: seconds a key's record and the ledger's spend are trusted before being read again
REFRESH_S = 5.0
#: usage rows are written in batches, at least this often
FLUSH_S = 0.25
FLUSH_ROWS = 256
MAX_CACHED_KEYS = 10_000
MINUTE_US = 60_000_000
#: how often a replica deletes the rows of full buckets from the shared rate table
PRUNE_S = 600.0
#: a full bucket's row is deleted this long after it filled up, so that a replica whose clock
#: runs ahead never deletes a row that another one still draws from
PRUNE_AFTER_US = 60_000_000
#: a ledger that cannot count requests is reported at most this often
FAILURE_LOG_S = 30.0
HOW_TO_CREATE = "create one with `rung keys create --name NAME`"


def hash_secret(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("utf-8")).hexdigest()


def parse_key(text: str) -> tuple[str, str] | None:
    """(id, secret) of a key of the form rk-<id>-<secret>, or None."""
    if not text.startswith(KEY_PREFIX):
        return None
    key_id, sep, secret = text.removeprefix(KEY_PREFIX).partition("-")
    if not sep or not key_id or not secret or not key_id.isalnum():
        return None
    return key_id, secret


def create_key(
    ledger: Ledger, name: str, rpm: int | None = None, budget_usd: float | None = None
) -> tuple[KeyRecord, str]:
    """A new key in the ledger, and its full text (shown once, never stored)."""
    if not name.strip():
        raise SpecError("a key needs a name (--name), to tell it apart in `rung keys list`")
    if rpm is not None and rpm < 1:
        raise SpecError(f"--rpm must be at least 1, got {rpm}")
    if budget_usd is not None and (budget_usd < 0 or not math.isfinite(budget_usd)):
        raise SpecError(f"--budget-usd must be a positive amount, got {budget_usd}")
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_hex(16)
    record = KeyRecord(
        id=key_id,
        name=name.strip(),
        salt=salt,
        hash=hash_secret(salt, secret),
        rpm=rpm,
        budget_usd=budget_usd,
        created_at=datetime.now(UTC),
        revoked_at=None,
    )
    ledger.add_key(record)
    return record, f"{KEY_PREFIX}{key_id}-{secret}"


class TokenBucket:
    """``rate_per_minute`` requests a minute, in bursts of up to that many."""

    def __init__(self, rate_per_minute: int, now: float) -> None:
        self.capacity = float(rate_per_minute)
        self.rate = rate_per_minute / 60.0
        self.tokens = self.capacity
        self.updated = now

    def take(self, now: float) -> float:
        """0 when a request may go now (and counts it), else seconds until one may."""
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


def uses_shared_rate_limits(limits: LimitsSpec, ledger: Ledger) -> bool:
    """Whether rate limits are counted in the ledger (``limits.shared_rate_limits``): ``auto``
    means when it is PostgreSQL, which replicas share; an SQLite ledger is most often one
    process's, which counts faster in its own memory."""
    wanted = limits.shared_rate_limits
    if wanted == "auto":
        return ledger.engine.dialect.name == "postgresql"
    if wanted:
        problem = ledger.shared_counts_problem()
        if problem is not None:
            raise ConfigurationError(
                f"limits.shared_rate_limits is true, but {problem}; use a PostgreSQL ledger "
                "(ledger.url: postgresql://user:pass@host/db), or set shared_rate_limits to "
                "false (each replica then limits keys on its own)"
            )
    return bool(wanted)


@dataclass
class _Ask:
    rpm: int
    answer: asyncio.Future[float | None]


class SharedRate:
    """Requests per minute per key, counted in the ledger, so that the replicas sharing it
    share each key's limit.

    The token bucket of ``TokenBucket`` (a burst of up to rpm, then one request every 60/rpm
    seconds), kept as GCRA keeps it: one time per key, when its bucket is full again, in the
    ledger's ``rung_rate`` table. Times are read from each replica's wall clock (keep them in
    sync, as NTP does: a replica whose clock is off by d seconds sees about d * rpm / 60
    requests more or fewer in the bucket).

    Each decision is one upsert per key (``Ledger.take_requests``), atomic across replicas.
    Requests that arrive while a statement is in flight wait for the next one and share it:
    under load one statement admits many. A key found empty is refused in memory until its
    bucket may hold a request again (others can only take more from it, so that refusal is
    never wrong); the ledger then decides again. When the ledger cannot be reached the caller
    limits on its own (``wait`` gives None) and the failure is logged."""

    def __init__(self, ledger: Ledger, wall: Callable[[], float] = time.time) -> None:
        self.ledger = ledger
        self.wall = wall
        self._asks: dict[str, list[_Ask]] = {}
        self._drainer: asyncio.Task[None] | None = None
        self._empty_until: dict[str, float] = {}
        self._pruned_at = -math.inf  # read and written on the ledger's rate thread only
        self._failure_logged_at = -math.inf

    async def wait(self, key_id: str, rpm: int) -> float | None:
        """0 when a request of this key may go now (and counts it), else seconds until one
        may; None when the ledger did not answer."""
        until = self._empty_until.get(key_id)
        if until is not None:
            left = until - self.wall()
            if left > 0:
                return left
            del self._empty_until[key_id]
        answer: asyncio.Future[float | None] = asyncio.get_running_loop().create_future()
        self._asks.setdefault(key_id, []).append(_Ask(rpm, answer))
        if self._drainer is None:
            self._drainer = asyncio.create_task(self._drain())
        return await answer

    async def close(self) -> None:
        if self._drainer is not None:
            self._drainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drainer

    async def _drain(self) -> None:
        asks: dict[str, list[_Ask]] = {}
        try:
            while self._asks:
                asks, self._asks = self._asks, {}
                wanted = {key_id: (len(batch), batch[-1].rpm) for key_id, batch in asks.items()}
                try:
                    now, counted = await self.ledger.run_rate(self._take, wanted)
                except Exception as e:
                    self._failed(e)
                    for batch in asks.values():
                        for ask in batch:
                            _answer(ask.answer, None)
                    continue
                if len(self._empty_until) >= MAX_CACHED_KEYS:
                    self._empty_until.clear()
                for key_id, batch in asks.items():
                    admitted, wait = counted[key_id]
                    if wait > 0:
                        self._empty_until[key_id] = now + wait
                    for i, ask in enumerate(batch):
                        # a refused request always waits a little, whatever the rounding
                        _answer(ask.answer, 0.0 if i < admitted else max(wait, 1e-3))
        finally:
            self._drainer = None
            for batch in (*asks.values(), *self._asks.values()):
                for ask in batch:
                    ask.answer.cancel()  # no-op on those answered
            self._asks = {}

    def _take(
        self, wanted: dict[str, tuple[int, int]]
    ) -> tuple[float, dict[str, tuple[int, float]]]:
        """On the rate thread: for each key, of the (requests, rpm) wanted, (requests admitted,
        seconds until its bucket holds one again); and the time of the decision."""
        now = self.wall()
        now_us = round(now * 1e6)
        asks = []
        for key_id, (n, rpm) in wanted.items():
            interval = max(1, MINUTE_US // rpm)
            asks.append((key_id, n, interval, interval * rpm))
        taken = self.ledger.take_requests(now_us, asks)
        counted: dict[str, tuple[int, float]] = {}
        for key_id, _, interval, burst in asks:
            full_at, admitted = taken[key_id]
            # a request fits again once the bucket is one interval short of full
            counted[key_id] = (admitted, max(0, full_at + interval - burst - now_us) / 1e6)
        if now - self._pruned_at > PRUNE_S:
            self._pruned_at = now
            try:
                self.ledger.prune_request_counts(now_us - PRUNE_AFTER_US)
            except Exception as e:
                # the requests are counted: a table that keeps full buckets longer harms nothing
                log.warning("cannot prune the ledger's rate table (will retry): %s", e)
        return now, counted

    def _failed(self, e: Exception) -> None:
        now = time.monotonic()
        if now - self._failure_logged_at >= FAILURE_LOG_S:
            self._failure_logged_at = now
            log.error(
                "cannot count requests in the ledger; each key is rate-limited by this "
                "process alone until it answers: %s",
                e,
            )


def _answer(answer: asyncio.Future[float | None], value: float | None) -> None:
    if not answer.done():  # a request cancelled meanwhile (its client left) needs no answer
        answer.set_result(value)


@dataclass(frozen=True)
class Principal:
    """Who a request is from: a key, or nobody when keys are not required."""

    key_id: str | None
    name: str | None = None
    rpm: int | None = None
    budget_usd: float | None = None


ANONYMOUS = Principal(key_id=None, name=None)


@dataclass
class _Spend:
    recorded: float = 0.0  # in the ledger when last read
    read_at: float = -math.inf
    pending: float = 0.0  # served here, not yet in the ledger


@dataclass
class _CachedKey:
    record: KeyRecord | None
    read_at: float


@dataclass
class Gate:
    ledger: Ledger
    auth: AuthSpec
    limits: LimitsSpec
    clock: Callable[[], float] = time.monotonic
    #: the wall clock, which shared rate limits are timed by (replicas share its time)
    wall: Callable[[], float] = time.time
    shared_rate: SharedRate | None = field(init=False, default=None)
    _keys: dict[str, _CachedKey] = field(default_factory=dict)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _spend: dict[str, _Spend] = field(default_factory=lambda: defaultdict(_Spend))
    _rows: list[UsageRow] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None
    _wake: asyncio.Event | None = None

    def __post_init__(self) -> None:
        if uses_shared_rate_limits(self.limits, self.ledger):
            self.shared_rate = SharedRate(self.ledger, self.wall)

    # -- admission ------------------------------------------------------------------------------

    async def admit(self, authorization: str | None) -> Principal:
        """The principal of a request with this Authorization header, or ApiError 401/429."""
        token = _bearer(authorization)
        if token is None:
            if not self.auth.required:
                return ANONYMOUS
            raise ApiError(
                401,
                "no API key: send it as the header 'Authorization: Bearer rk-...'; "
                + HOW_TO_CREATE,
                code="missing_api_key",
            )
        record = await self._key(token)
        principal = Principal(
            key_id=record.id,
            name=record.name,
            rpm=record.rpm if record.rpm is not None else self.limits.default_rpm,
            budget_usd=(
                record.budget_usd
                if record.budget_usd is not None
                else self.limits.default_budget_usd
            ),
        )
        await self._check_rate(principal)
        await self._check_budget(principal)
        return principal

    async def identify(self, token: str) -> KeyRecord:
        """The active key ``token`` is, or ApiError 401, without counting a request (the web
        page checks its login with it on every page)."""
        return await self._key(token)

    async def _key(self, token: str) -> KeyRecord:
        parsed = parse_key(token)
        invalid = ApiError(
            401,
            f"invalid API key {_shown(token)}: it is not a key of this server; {HOW_TO_CREATE}",
            code="invalid_api_key",
        )
        if parsed is None:
            raise invalid
        key_id, secret = parsed
        now = self.clock()
        cached = self._keys.get(key_id)
        if cached is None or now - cached.read_at > REFRESH_S:
            if len(self._keys) >= MAX_CACHED_KEYS:
                self._keys.clear()  # made-up key ids must not grow the cache without end
            cached = _CachedKey(await self.ledger.run(self.ledger.get_key, key_id), now)
            self._keys[key_id] = cached
        record = cached.record
        if record is None or not hmac.compare_digest(record.hash, hash_secret(record.salt, secret)):
            raise invalid
        if record.revoked_at is not None:
            raise ApiError(
                401,
                f"API key {_shown(token)} ({record.name}) was revoked on "
                f"{record.revoked_at:%Y-%m-%d %H:%M} UTC; {HOW_TO_CREATE}",
                code="revoked_api_key",
            )
        return record

    async def _check_rate(self, principal: Principal) -> None:
        key_id, rpm = principal.key_id, principal.rpm
        if rpm is None or key_id is None:
            return
        wait = None
        if self.shared_rate is not None:
            wait = await self.shared_rate.wait(key_id, rpm)
        if wait is None:
            now = self.clock()
            bucket = self._buckets.get(key_id)
            if bucket is None or bucket.capacity != rpm:
                bucket = self._buckets[key_id] = TokenBucket(rpm, now)
            wait = bucket.take(now)
        if wait > 0:
            raise ApiError(
                429,
                f"rate limit of key {principal.name!r} reached: {principal.rpm} requests per "
                f"minute; retry in {wait:.1f} s, or ask for a key with a higher --rpm",
                type="rate_limit_error",
                code="rate_limit_exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )

    async def _check_budget(self, principal: Principal) -> None:
        if principal.budget_usd is None or principal.key_id is None:
            return
        spent = await self.spent(principal.key_id)
        if spent >= principal.budget_usd:
            raise ApiError(
                429,
                f"budget of key {principal.name!r} is spent: ${spent:.6f} of "
                f"${principal.budget_usd:g}; create a key with a larger --budget-usd",
                type="insufficient_quota",
                code="insufficient_quota",
            )

    async def spent(self, key_id: str) -> float:
        """USD spent by a key: in the ledger, plus what this process served and has not written."""
        spend = self._spend[key_id]
        now = self.clock()
        if now - spend.read_at > REFRESH_S:
            recorded = await self.ledger.run(self.ledger.spent, key_id)
            spend.recorded, spend.read_at = recorded, now
        return spend.recorded + spend.pending

    # -- usage ----------------------------------------------------------------------------------

    def record(self, row: UsageRow) -> None:
        """Log a served request (written to the ledger in the next batch)."""
        self._rows.append(row)
        if row.key_id is not None:
            self._spend[row.key_id].pending += row.cost_usd
        if len(self._rows) >= FLUSH_ROWS and self._wake is not None:
            self._wake.set()

    async def flush(self) -> None:
        rows, self._rows = self._rows, []
        if not rows:
            return
        try:
            recorded = await self.ledger.run(self.ledger.record, rows)
        except Exception:
            # Losing usage silently would hide spend: keep the rows for the next try.
            self._rows = rows + self._rows
            raise
        now = self.clock()
        for row in rows:
            if row.key_id is not None:
                self._spend[row.key_id].pending -= row.cost_usd
        for key_id, total in recorded.items():
            spend = self._spend[key_id]
            spend.recorded, spend.read_at = total, now

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self.shared_rate is not None:
            await self.shared_rate.close()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush()

    async def _flush_loop(self) -> None:
        assert self._wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FLUSH_S)
            self._wake.clear()
            try:
                await self.flush()
            except Exception as e:
                log.error("cannot write usage to the ledger (will retry): %s", e)


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _shown(token: str) -> str:
    """A key as messages show it: never the secret."""
    parsed = parse_key(token)
    if parsed is not None:
        return f"{KEY_PREFIX}{parsed[0]}-…"
    return f"{token[:3]}…" if len(token) > 3 else "…"
