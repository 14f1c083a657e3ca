"""The ledger in a real PostgreSQL, started here in a temporary folder: keys, usage and budgets
shared by two server replicas.

Needs Debian's ``postgresql`` package (initdb and pg_ctl). The test is skipped when they are
absent, unless RUNG_REQUIRE_POSTGRES is set (CI sets it, so it cannot skip silently there).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.serve import auth, create_app, parse_config
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger
from tests.serve.conftest import LABELS, SMOL_PRICE
from tests.serve.harness import AppHarness, free_port

CLASSIFY = {"model": "smollm2", "input": "Net sales rose 10 %."}


def _pg_bindir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    # Debian keeps the server binaries off PATH, one folder per major version
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0,
    )
    return versions[-1].parent if versions else None


def _as_postgres_user(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--", *argv]
    return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(argv)]


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    bindir = _pg_bindir()
    if bindir is None:
        if os.environ.get("RUNG_REQUIRE_POSTGRES"):
            pytest.fail(
                "RUNG_REQUIRE_POSTGRES is set but initdb is not installed: "
                "apt-get install -y postgresql"
            )
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    root = Path(tempfile.mkdtemp(prefix="rung-pg-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = free_port()

    def run(*argv: str) -> None:
        done = subprocess.run(
            _as_postgres_user(list(argv)), capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}"

    run(
        str(bindir / "initdb"),
        "-D",
        str(data),
        "-A",
        "trust",
        "-U",
        "postgres",
        "--no-sync",
        "-E",
        "UTF8",
    )
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -F"
    run(
        str(bindir / "pg_ctl"),
        "-D",
        str(data),
        "-o",
        options,
        "-l",
        str(root / "log"),
        "-w",
        "start",
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            _as_postgres_user([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def replicas(
    postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[AppHarness]]:
    """Two servers sharing one PostgreSQL ledger, as replicas behind a load balancer would."""
    config = parse_config(
        {
            "models": [
                {
                    "id": "llamacpp:smollm2-135m-instruct",
                    "name": "smollm2",
                    "labels": LABELS,
                    "price": SMOL_PRICE,
                }
            ],
            "ledger": {"url": postgres_url},
        },
        base_dir=tmp_path_factory.mktemp("pg-serve"),
    )
    started: list[AppHarness] = []
    try:
        for _ in range(2):
            started.append(AppHarness(create_app(config)).start())
        yield started
    finally:
        for harness in started:
            harness.stop()


def test_ledger_in_postgres(
    replicas: list[AppHarness], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = replicas
    ledger = Ledger(postgres_url)
    try:
        assert ledger.engine.dialect.name == "postgresql"
        record, key = create_key(ledger, "replicated", budget_usd=0.05)
        r = a.post("/v1/classify", key, json=CLASSIFY)
        assert r.status_code == 200, r.text
        cost = r.json()["cost_usd"]
        assert 0 < cost < 0.05
        a.flush()
        [row] = ledger.rows(record.id)
        assert (row.endpoint, row.model, row.status) == ("classify", "smollm2", 200)
        assert row.rung == "llamacpp:smollm2-135m-instruct"
        assert row.cost_usd == pytest.approx(cost)
        assert row.ts.tzinfo is not None

        # the other replica reads the spend from the shared ledger
        monkeypatch.setattr(auth, "REFRESH_S", 0.0)
        assert b.post("/v1/classify", key, json=CLASSIFY).status_code == 200
        b.flush()
        assert ledger.spent(record.id) == pytest.approx(2 * cost)
        r = a.post("/v1/classify", key, json=CLASSIFY)
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "insufficient_quota"

        # a key revoked through the ledger is refused by every replica
        ledger.revoke_key(record.id)
        for replica in (a, b):
            assert replica.get("/v1/models", key).status_code == 401
        assert ledger.totals(record.id).requests == 2  # rejected requests cost nothing
    finally:
        ledger.close()
