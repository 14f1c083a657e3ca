"""Web sessions on their own: a signed cookie that names a session held by the server, refused
when forged, tampered with, expired or closed; and the /v1 authorization it stands for only
with the session's CSRF header. Then the login form on a real app without models: a wrong, an
empty or an oversized key gets the login page with the error, and the server keeps serving."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.serve import auth, create_app, parse_config
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger
from rung.serve.web.sessions import COOKIE, WebSessions
from tests.serve.harness import AppHarness


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _scope(cookie: str | None, csrf: str | None) -> dict[str, object]:
    headers = []
    if cookie is not None:
        headers.append((b"cookie", f"other=1; {COOKIE}={cookie}".encode()))
    if csrf is not None:
        headers.append((b"x-rung-csrf", csrf.encode()))
    return {"type": "http", "headers": headers}


def test_a_session_is_found_by_its_signed_cookie_only() -> None:
    sessions = WebSessions(3600, secret="s" * 32)
    cookie = sessions.open("rk-abc-secret", "abc", "tests", admin=False)
    session = sessions.get(cookie)
    assert session is not None and session.key == "rk-abc-secret"
    assert "secret" not in cookie  # the cookie names the session; the key stays here
    assert sessions.get(cookie[:-2] + "xx") is None
    assert sessions.get("made-up") is None
    assert sessions.get(None) is None
    # another server's secret signs cookies this one refuses
    assert WebSessions(3600, secret="t" * 32).get(cookie) is None
    sessions.close(cookie)
    assert sessions.get(cookie) is None


def test_a_session_ends_after_its_hours() -> None:
    clock = Clock()
    sessions = WebSessions(60, secret="s" * 32, clock=clock)
    cookie = sessions.open("rk-abc-secret", "abc", "tests", admin=True)
    clock.now += 59
    assert sessions.get(cookie) is not None
    clock.now += 2
    assert sessions.get(cookie) is None


def test_the_cookie_stands_for_the_key_only_with_the_csrf_header() -> None:
    sessions = WebSessions(3600, secret="s" * 32)
    cookie = sessions.open("rk-abc-secret", "abc", "tests", admin=False)
    session = sessions.get(cookie)
    assert session is not None
    assert sessions.authorization(_scope(cookie, session.csrf)) == "Bearer rk-abc-secret"
    assert sessions.authorization(_scope(cookie, None)) is None
    assert sessions.authorization(_scope(cookie, "wrong")) is None
    assert sessions.authorization(_scope(None, session.csrf)) is None


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppHarness, str]]:
    root: Path = tmp_path_factory.mktemp("web-bare")
    url = f"sqlite:///{root / 'ledger.db'}"
    config = parse_config({"auth": {"required": True}, "runs_dir": str(root)}, base_dir=root)
    harness = AppHarness(create_app(config, ledger_url=url)).start()
    ledger = Ledger(url)
    key = create_key(ledger, "tests")[1]
    ledger.close()
    try:
        yield harness, key
    finally:
        harness.stop()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("rk-abc123-wrong", "invalid API key rk-abc123-…"),
        ("not a key", "invalid API key"),
        ("", "enter an API key"),
    ],
)
def test_a_bad_key_gets_the_login_page_with_the_error(
    bare: tuple[AppHarness, str], key: str, message: str
) -> None:
    app, _ = bare
    reply = app.post("/web/login", data={"key": key})
    assert reply.status_code == 401
    assert message in reply.text and "Log in" in reply.text
    assert COOKIE not in reply.headers.get("set-cookie", "")
    assert app.get("/healthz").status_code == 200


def test_an_oversized_form_is_refused_as_no_key(bare: tuple[AppHarness, str]) -> None:
    app, _ = bare
    reply = app.post("/web/login", data={"key": "rk-" + "a" * 10_000})
    assert reply.status_code == 401 and "enter an API key" in reply.text


def test_login_sets_an_httponly_cookie_and_goes_only_to_web_pages(
    bare: tuple[AppHarness, str],
) -> None:
    app, key = bare
    reply = app.post("/web/login", data={"key": key, "next": "https://evil.example/"})
    assert reply.status_code == 303 and reply.headers["location"] == "/web/runs"
    cookie = reply.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie
    assert "samesite=strict" in cookie.lower()
    reply = app.post("/web/login", data={"key": key, "next": "/web/playground"})
    assert reply.headers["location"] == "/web/playground"
    runs = app.get("/web/runs", headers={"cookie": cookie.split(";")[0]})
    assert runs.status_code == 200 and "No compare runs" in runs.text
    assert "script-src 'self'" in runs.headers["content-security-policy"]


def test_a_revoked_key_ends_its_session(
    bare: tuple[AppHarness, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    app, _ = bare
    # the gate trusts a key's record for REFRESH_S; read it again at once here
    monkeypatch.setattr(auth, "REFRESH_S", 0.0)
    ledger = Ledger(app.state.ledger_url)
    try:
        record, key = create_key(ledger, "soon revoked")
        cookie = app.post("/web/login", data={"key": key}).headers["set-cookie"].split(";")[0]
        assert app.get("/web/runs", headers={"cookie": cookie}).status_code == 200
        ledger.revoke_key(record.id)
    finally:
        ledger.close()
    app.client.cookies.clear()
    reply = app.get("/web/runs", headers={"cookie": cookie})
    assert reply.status_code == 303 and reply.headers["location"].startswith("/web/login")
