"""Rate limits shared by replicas: two app instances over one ledger (a real PostgreSQL, as in
test_postgres.py, and one SQLite file) admit a key's rpm between them, not each; the shared
token bucket over time, and under concurrent writers.

The apps serve no model: /v1/models asks for a key, so it passes the whole admission."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from rung.errors import ConfigurationError, SpecError
from rung.serve import create_app, parse_config
from rung.serve.auth import SharedRate, create_key, uses_shared_rate_limits
from rung.serve.config import LimitsSpec
from rung.serve.ledger import Ledger
from tests.serve.harness import AppHarness
from tests.serve.test_postgres import postgres_url  # noqa: F401  (a fixture)

Shared = bool | str


@contextmanager
def replicas(
    url: str, base_dir: Path, shared: Shared = "auto", n: int = 2
) -> Iterator[list[AppHarness]]:
    """``n`` servers over one ledger, as replicas behind a load balancer would be."""
    config = parse_config(
        {"ledger": {"url": url}, "limits": {"shared_rate_limits": shared}}, base_dir=base_dir
    )
    started: list[AppHarness] = []
    try:
        for _ in range(n):
            started.append(AppHarness(create_app(config)).start())
        yield started
    finally:
        for harness in started:
            harness.stop()


async def _gets(client: httpx.AsyncClient, key: str, n: int) -> list[httpx.Response]:
    headers = {"Authorization": f"Bearer {key}"}
    return list(
        await asyncio.gather(*(client.get("/v1/models", headers=headers) for _ in range(n)))
    )


def burst(servers: list[AppHarness], key: str, per_server: int) -> list[httpx.Response]:
    """``per_server`` concurrent requests to each server, all servers at once."""
    futures = [
        asyncio.run_coroutine_threadsafe(_gets(s.client, key, per_server), s.loop) for s in servers
    ]
    return [r for f in futures for r in f.result(120)]


def assert_rate_limited(r: httpx.Response, rpm: int) -> None:
    assert r.status_code == 429, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limit_exceeded"
    assert f"{rpm} requests per minute" in body["error"]["message"]
    assert int(r.headers["Retry-After"]) >= 1


def set_wall(servers: list[AppHarness], clock: list[float]) -> None:
    for server in servers:
        shared = server.state.gate.shared_rate if server.state.gate else None
        assert shared is not None
        shared.wall = lambda: clock[0]


# -- which limiter -------------------------------------------------------------------------------


def test_auto_is_shared_with_postgresql_only(tmp_path: Path, postgres_url: str) -> None:  # noqa: F811
    sqlite = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    pg = Ledger(postgres_url)
    try:
        auto = LimitsSpec()
        assert auto.shared_rate_limits == "auto"
        assert uses_shared_rate_limits(auto, pg)
        assert not uses_shared_rate_limits(auto, sqlite)
        assert uses_shared_rate_limits(LimitsSpec(shared_rate_limits=True), sqlite)
        assert not uses_shared_rate_limits(LimitsSpec(shared_rate_limits=False), pg)
    finally:
        sqlite.close()
        pg.close()


def test_the_config_says_auto_true_or_false() -> None:
    for value in ("auto", True, False):
        config = parse_config({"limits": {"shared_rate_limits": value}})
        assert config.limits.shared_rate_limits == value
    with pytest.raises(SpecError, match="shared_rate_limits"):
        parse_config({"limits": {"shared_rate_limits": "sometimes"}})


def test_shared_on_an_in_memory_ledger_is_refused() -> None:
    ledger = Ledger("sqlite:///:memory:")
    try:
        with pytest.raises(ConfigurationError, match=r"in-memory.*PostgreSQL"):
            uses_shared_rate_limits(LimitsSpec(shared_rate_limits=True), ledger)
    finally:
        ledger.close()


# -- the shared bucket in the ledger ----------------------------------------------------------


@pytest.fixture(params=["postgresql", "sqlite"])
def rate_ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'ledger.db'}"


S = 1_000_000  # µs
NOW = 1_800_000_000 * S


def test_take_requests(rate_ledger_url: str) -> None:
    ledger = Ledger(rate_ledger_url)
    every = 15 * S  # 4 requests a minute
    burst = 4 * every
    try:
        # a key never seen has a full bucket
        assert ledger.take_requests(NOW, [("k", 3, every, burst)]) == {"k": (NOW + 45 * S, 3)}
        # a batch takes what is left, and the rest of the batch is not counted
        assert ledger.take_requests(NOW, [("k", 3, every, burst)]) == {"k": (NOW + 60 * S, 1)}
        assert ledger.take_requests(NOW + 14 * S, [("k", 1, every, burst)]) == {
            "k": (NOW + 60 * S, 0)
        }
        # one request back every 15 s; several keys in one call
        assert ledger.take_requests(NOW + 31 * S, [("k", 5, every, burst), ("j", 9, S, 2 * S)]) == {
            "k": (NOW + 90 * S, 2),
            "j": (NOW + 33 * S, 2),
        }
        # idle long enough, the bucket is full again, never fuller
        later = NOW + 3600 * S
        assert ledger.take_requests(later, [("k", 9, every, burst)]) == {"k": (later + 60 * S, 4)}
        # a replica whose clock runs behind the bucket's takes nothing, and moves nothing back
        assert ledger.take_requests(NOW, [("k", 1, every, burst)]) == {"k": (later + 60 * S, 0)}
        # full buckets go, the others stay
        assert ledger.prune_request_counts(later) == 1  # j's
        assert ledger.prune_request_counts(later + 60 * S) == 1
    finally:
        ledger.close()


def _hammer(url: str, writers: int, each: int, every: int, burst: int) -> int:
    """``writers`` threads, each with a ledger (an engine) of its own, take one request at a
    time from one key at one instant; the requests taken in all."""
    ledgers = [Ledger(url) for _ in range(writers)]
    admitted = [0] * writers
    start = threading.Barrier(writers)

    def write(i: int) -> None:
        start.wait()
        for _ in range(each):
            admitted[i] += ledgers[i].take_requests(NOW, [("busy", 1, every, burst)])["busy"][1]

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        with ledgers[0].engine.connect() as conn:
            full_at = (
                conn.execute(ledgers[0].rate.select().where(ledgers[0].rate.c.key_id == "busy"))
                .one()
                .full_at
            )
    finally:
        for ledger in ledgers:
            ledger.close()
    assert full_at == NOW + sum(admitted) * every  # only what was taken is counted
    return sum(admitted)


def test_concurrent_writers_never_take_more_than_the_bucket_holds(rate_ledger_url: str) -> None:
    assert _hammer(rate_ledger_url, writers=4, each=8, every=S, burst=17 * S) == 17


# -- replicas --------------------------------------------------------------------------------------


def test_two_replicas_on_postgresql_share_a_keys_rpm(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    rpm = 7
    with replicas(postgres_url, tmp_path) as servers:
        assert all(
            isinstance(s.state.gate and s.state.gate.shared_rate, SharedRate) for s in servers
        )
        ledger = Ledger(postgres_url)
        try:
            _, key = create_key(ledger, "shared", rpm=rpm)
            started = time.perf_counter()
            responses = burst(servers, key, per_server=10)
            ok = [r for r in responses if r.status_code == 200]
            assert len(ok) == rpm, [r.status_code for r in responses]
            for r in responses:
                if r.status_code != 200:
                    assert_rate_limited(r, rpm)
            # each replica refuses the next one, whichever admitted more
            for server in servers:
                assert_rate_limited(server.get("/v1/models", key), rpm)
            elapsed = time.perf_counter() - started
            # a request comes back every 60/7 s: the burst took less, so none came back meanwhile
            assert elapsed < 60 / rpm
            print(f"\n22 requests over 2 replicas in {elapsed:.2f} s: {len(ok)} admitted")
        finally:
            ledger.close()


def test_without_sharing_each_replica_admits_the_rpm(
    postgres_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    """shared_rate_limits: false keeps the per-process token bucket (and says what it costs)."""
    rpm = 3
    with replicas(postgres_url, tmp_path, shared=False) as servers:
        assert all(s.state.gate and s.state.gate.shared_rate is None for s in servers)
        ledger = Ledger(postgres_url)
        try:
            _, key = create_key(ledger, "per-process", rpm=rpm)
            responses = burst(servers, key, per_server=5)
            assert sum(r.status_code == 200 for r in responses) == 2 * rpm
        finally:
            ledger.close()


def test_the_shared_bucket_fills_over_time(postgres_url: str, tmp_path: Path) -> None:  # noqa: F811
    """On a clock set by the test: a request comes back every 60/rpm s, to rpm at most."""
    rpm = 4  # one every 15 s
    clock = [1_900_000_000.0]
    with replicas(postgres_url, tmp_path) as servers:
        set_wall(servers, clock)
        a, b = servers
        ledger = Ledger(postgres_url)
        try:
            _, key = create_key(ledger, "refilled", rpm=rpm)
            for server in (a, b, a, b):
                assert server.get("/v1/models", key).status_code == 200
            for server in (b, a):  # b knows the bucket is empty; a learns it from the ledger
                refused = server.get("/v1/models", key)
                assert_rate_limited(refused, rpm)
                assert refused.headers["Retry-After"] == "15"

            clock[0] += 14.0  # one second short
            assert a.get("/v1/models", key).headers["Retry-After"] == "1"
            clock[0] += 1.5
            assert a.get("/v1/models", key).status_code == 200
            refused = b.get("/v1/models", key)
            assert_rate_limited(refused, rpm)
            assert refused.headers["Retry-After"] == "15"  # 14.5 s, rounded up

            clock[0] += 120.0  # full again, and no fuller than rpm
            statuses = [s.get("/v1/models", key).status_code for s in (a, b, a, b, a)]
            assert statuses == [200, 200, 200, 200, 429]
        finally:
            ledger.close()


def test_two_replicas_sharing_an_sqlite_file(tmp_path: Path) -> None:
    """shared_rate_limits: true with SQLite: processes on one host sharing the ledger file."""
    rpm = 5
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with replicas(url, tmp_path, shared=True) as servers:
        assert all(
            isinstance(s.state.gate and s.state.gate.shared_rate, SharedRate) for s in servers
        )
        ledger = Ledger(url)
        try:
            _, key = create_key(ledger, "sqlite-shared", rpm=rpm)
            responses = burst(servers, key, per_server=6)
            assert sum(r.status_code == 200 for r in responses) == rpm
            for r in responses:
                if r.status_code != 200:
                    assert_rate_limited(r, rpm)
        finally:
            ledger.close()


def test_a_ledger_that_cannot_count_falls_back_to_this_process(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rpm = 2
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    with replicas(url, tmp_path, shared=True, n=1) as [server]:
        ledger = Ledger(url)
        try:
            _, key = create_key(ledger, "fallback", rpm=rpm)
            assert server.get("/v1/models", key).status_code == 200
            with ledger.engine.begin() as conn:
                conn.exec_driver_sql("DROP TABLE rung_rate")
            with caplog.at_level(logging.ERROR, logger="rung.serve"):
                statuses = [server.get("/v1/models", key).status_code for _ in range(3)]
            # the token bucket starts full: it does not know of the request counted before
            assert statuses == [200, 200, 429]
            assert "cannot count requests in the ledger" in caplog.text
        finally:
            ledger.close()
