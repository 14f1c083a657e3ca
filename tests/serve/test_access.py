"""API keys, rate limits, budgets and the usage ledger (SQLite), through the real app; and the
`rung keys` commands."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import typer
from typer.testing import CliRunner

from rung.cli import serve_cmds
from rung.serve import auth
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger
from tests.serve.harness import AppHarness

CLASSIFY = {"model": "smollm2", "input": "Net sales rose 10 %."}


def _error(r: httpx.Response) -> dict[str, Any]:
    body = r.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    return error


def test_no_key_is_401(served: AppHarness) -> None:
    r = served.post("/v1/classify", json=CLASSIFY)
    assert r.status_code == 401
    error = _error(r)
    assert error["code"] == "missing_api_key"
    assert "rung keys create" in error["message"]
    assert served.post("/graphql", json={"query": "{ models { name } }"}).status_code == 401
    assert served.get("/v1/models").status_code == 401


@pytest.mark.parametrize(
    "header",
    ["Bearer rk-000000000000-notasecret", "Bearer sk-openai-style", "Bearer rk-", "Basic abc"],
)
def test_bad_key_is_401(served: AppHarness, header: str) -> None:
    r = served.post("/v1/classify", json=CLASSIFY, headers={"Authorization": header})
    assert r.status_code == 401
    assert _error(r)["code"] in {"invalid_api_key", "missing_api_key"}
    assert "notasecret" not in r.text  # the secret is never echoed


def test_a_wrong_secret_for_a_real_key_id_is_401(served: AppHarness, ledger: Ledger) -> None:
    record, key = create_key(ledger, "wrong-secret")
    forged = f"rk-{record.id}-{'x' * 43}"
    r = served.post("/v1/classify", forged, json=CLASSIFY)
    assert r.status_code == 401
    assert served.post("/v1/classify", key, json=CLASSIFY).status_code == 200


def test_over_the_rate_limit_is_429(served: AppHarness, ledger: Ledger) -> None:
    _, key = create_key(ledger, "slow", rpm=2)
    assert served.get("/v1/models", key).status_code == 200
    assert served.get("/v1/models", key).status_code == 200
    r = served.get("/v1/models", key)
    assert r.status_code == 429
    error = _error(r)
    assert error["type"] == "rate_limit_error"
    assert "2 requests per minute" in error["message"]
    assert int(r.headers["Retry-After"]) >= 1
    # an SQLite ledger (auto): counted in this process's memory, nothing written per request
    assert served.state.gate is not None and served.state.gate.shared_rate is None
    with ledger.engine.connect() as conn:
        assert conn.execute(ledger.rate.select()).first() is None


def test_over_budget_is_429_insufficient_quota(served: AppHarness, ledger: Ledger) -> None:
    _, key = create_key(ledger, "thrifty", budget_usd=0.01)
    first = served.post("/v1/classify", key, json=CLASSIFY)
    assert first.status_code == 200
    assert first.json()["cost_usd"] > 0.01  # one request at $1000 per million tokens spends it
    r = served.post("/v1/classify", key, json=CLASSIFY)
    assert r.status_code == 429
    error = _error(r)
    assert error["code"] == "insufficient_quota"
    assert "budget" in error["message"]


def test_revoked_key_is_401(
    served: AppHarness, ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    record, key = create_key(ledger, "short-lived")
    assert served.get("/v1/models", key).status_code == 200
    ledger.revoke_key(record.id)
    monkeypatch.setattr(auth, "REFRESH_S", 0.0)  # re-read the key at once
    r = served.get("/v1/models", key)
    assert r.status_code == 401
    assert _error(r)["code"] == "revoked_api_key"


def test_usage_rows_are_written_to_the_ledger(served: AppHarness, ledger: Ledger) -> None:
    record, key = create_key(ledger, "audited")
    served.post("/v1/classify", key, json=CLASSIFY)
    served.post("/v1/classify", key, json={"model": "sentiment", "input": ["Up.", "Down."]})
    served.post("/v1/classify", key, json={"model": "nope", "input": "x"})
    served.flush()
    rows = ledger.rows(record.id)
    assert [(r.endpoint, r.model, r.status) for r in rows] == [
        ("classify", "smollm2", 200),
        ("classify", "sentiment", 200),
        ("classify", "-", 404),
    ]
    smol, enc, _ = rows
    assert smol.rung == "llamacpp:smollm2-135m-instruct"
    assert smol.tokens_in > 10 and smol.tokens_out >= 1
    assert smol.cost_usd == pytest.approx((smol.tokens_in + smol.tokens_out) * 1000 / 1e6)
    assert enc.rung == "encoder:minilm-l6" and enc.cost_usd == 0.0
    assert all(r.latency_ms > 0 for r in rows)
    assert ledger.spent(record.id) == pytest.approx(smol.cost_usd)
    totals = ledger.totals(record.id)
    assert totals.requests == 3
    assert totals.by_rung["llamacpp:smollm2-135m-instruct"] == 1


def test_keys_commands(ledger_url: str) -> None:
    app = typer.Typer()
    serve_cmds.register(app)
    runner = CliRunner()
    made = runner.invoke(
        app, ["keys", "create", "--name", "cli", "--rpm", "5", "--ledger", ledger_url]
    )
    assert made.exit_code == 0, made.output
    key = made.stdout.strip().splitlines()[-1]
    assert key.startswith("rk-")
    key_id = key.split("-")[1]
    listed = runner.invoke(app, ["keys", "list", "--json", "--ledger", ledger_url])
    assert listed.exit_code == 0, listed.output
    rows = {r["id"]: r for r in json.loads(listed.stdout)}
    assert rows[key_id]["name"] == "cli" and rows[key_id]["rpm"] == 5
    db = Ledger(ledger_url)
    try:
        stored = db.get_key(key_id)
        assert stored is not None
        assert key.split("-", 2)[2] not in (stored.hash, stored.salt)  # only a salted hash
    finally:
        db.close()
    revoked = runner.invoke(app, ["keys", "revoke", key_id, "--ledger", ledger_url])
    assert revoked.exit_code == 0, revoked.output
    again = runner.invoke(app, ["keys", "revoke", key_id, "--ledger", ledger_url])
    assert again.exit_code == 2
    assert "no active key" in again.output
