"""The web page in headless Chromium against a real server with two real rungs: an anonymous
visitor sees only the login page, a wrong key gets the login page back with the error, every
page renders without a console or page error, the playground streams answers from both rungs
side by side with latency and cost, keys and usage are for admins, and logging out ends the
session."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.serve.web.conftest import BrowserPage, WebServer

pytestmark = pytest.mark.slow

PRIVATE = ["/web/runs", "/web/runs/fpb", "/web/runs/fpb/report.html", "/web/playground",
           "/web/flows", "/web/keys"]  # fmt: skip


def _shot(web: WebServer, page: Any, name: str) -> None:
    page.screenshot(path=str(web.artifacts / f"{name}.png"), full_page=True)


def _login(web: WebServer, seen: BrowserPage, key: str) -> None:
    page = seen.page
    page.goto(f"{web.url}/web/login")
    page.fill("input[name=key]", key)
    page.click("form.login button[type=submit]")
    page.wait_for_url(re.compile(r".*/web/runs$"))


def test_anonymous_sees_only_the_login_page(web: WebServer, page: BrowserPage) -> None:
    print(f"screenshots: {web.artifacts}")
    for path in PRIVATE:
        response = page.page.goto(f"{web.url}{path}")
        assert response is not None and response.ok
        assert page.page.url.startswith(f"{web.url}/web/login?next="), path
        body = page.page.inner_text("body")
        assert "Log in" in body
        for private in ("fpb sentiment", "smollm2", "admin", "Keys and usage"):
            assert private not in body, (path, private)
    _shot(web, page.page, "login")
    assert page.errors == []
    # and the API says so in JSON
    reply = httpx.post(f"{web.url}/v1/chat/completions", json={"model": "smollm2"})
    assert reply.status_code == 401
    assert reply.json()["error"]["code"] == "missing_api_key"


def test_a_wrong_key_gets_the_login_page_with_the_error(web: WebServer, page: BrowserPage) -> None:
    p = page.page
    p.goto(f"{web.url}/web/login")
    p.fill("input[name=key]", "rk-abc123-not-a-secret")
    with p.expect_response(f"{web.url}/web/login") as answer:
        p.click("form.login button[type=submit]")
    assert answer.value.status == 401
    assert "invalid API key" in p.inner_text("[role=alert]")
    assert "not-a-secret" not in p.content()  # the secret is never echoed
    _shot(web, p, "login-wrong-key")
    # the server keeps serving, and a wrong key on the API is a 401 in JSON
    assert httpx.get(f"{web.url}/healthz").status_code == 200
    reply = httpx.get(
        f"{web.url}/v1/models", headers={"Authorization": "Bearer rk-abc123-not-a-secret"}
    )
    assert reply.status_code == 401 and reply.json()["error"]["code"] == "invalid_api_key"
    _login(web, page, web.user_key)
    # a non-console 401 shows up as a console error of the failed form post: expected here
    assert [e for e in page.errors if "401" not in e] == []


def test_every_page_renders_for_an_admin(web: WebServer, page: BrowserPage) -> None:
    _login(web, page, web.admin_key)
    p = page.page
    assert "fpb sentiment" in p.inner_text("table.runs")
    _shot(web, p, "runs")

    p.click("text=fpb sentiment")
    p.wait_for_url(re.compile(r".*/web/runs/fpb$"))
    assert "encoder:minilm-l6" in p.inner_text("table.rungs")
    frame = p.frame_locator("iframe.report")
    frame.locator("h1").first.wait_for()
    _shot(web, p, "run")

    for path, heading in [("playground", "Playground"), ("flows", "Flows"),
                          ("keys", "Keys and usage")]:  # fmt: skip
        response = p.goto(f"{web.url}/web/{path}")
        assert response is not None and response.status == 200, path
        assert p.inner_text("h1") == heading
        _shot(web, p, path)
    keys = p.inner_text("table.keys")
    assert "admin" in keys and "user" in keys
    assert page.errors == []


def test_the_playground_streams_two_rungs_side_by_side(web: WebServer, page: BrowserPage) -> None:
    _login(web, page, web.user_key)
    p = page.page
    p.goto(f"{web.url}/web/playground")
    p.fill("textarea[name=prompt]", "Name one colour.")
    p.fill("input[name=max_tokens]", "12")
    p.check("input[value=smollm2]")
    p.check("input[value=gemma]")
    p.click("#playground button[type=submit]")
    try:
        for model in ("smollm2", "gemma"):
            p.wait_for_selector(
                f"article.answer[data-model={model}][data-state=done]", timeout=120_000
            )
    finally:
        _shot(web, p, "playground-answers")
    for model in ("smollm2", "gemma"):
        card = p.locator(f"article.answer[data-model={model}]")
        assert card.locator(".text").inner_text().strip(), f"{model} answered nothing"
        assert card.locator(".latency").inner_text().endswith("ms")
        assert card.locator(".ttft").inner_text().endswith("ms")
        assert re.match(r"\d+ in, \d+ out", card.locator(".tokens").inner_text())
        assert card.locator(".error").is_hidden()
    # smollm2 is priced in this config; gemma is self-hosted at no price
    assert p.locator("article.answer[data-model=smollm2] .cost").inner_text().startswith("$")
    assert p.locator("article.answer[data-model=gemma] .cost").inner_text() == "$0"
    assert page.errors == []
    # the page's calls went through the gateway under the user's key
    web.harness.flush()
    user = next(k for k in web.ledger.list_keys() if k.name == "user")
    rows = [r for r in web.ledger.rows(user.id) if r.endpoint == "chat.completions"]
    assert {r.model for r in rows} >= {"smollm2", "gemma"}
    assert all(r.status == 200 for r in rows)


def test_keys_are_for_admins_and_logout_ends_the_session(web: WebServer, page: BrowserPage) -> None:
    _login(web, page, web.user_key)
    p = page.page
    assert p.locator("header nav a", has_text="Keys").count() == 0
    response = p.goto(f"{web.url}/web/keys")
    assert response is not None and response.status == 403
    assert "Admins only" in p.inner_text("h1")
    assert p.locator("table.keys").count() == 0
    p.click("text=Log out")
    p.wait_for_url(re.compile(r".*/web/login$"))
    p.goto(f"{web.url}/web/runs")
    assert p.url.startswith(f"{web.url}/web/login")
    assert [e for e in page.errors if "403" not in e] == []


def test_the_session_cookie_alone_does_not_call_the_api(web: WebServer, page: BrowserPage) -> None:
    """A call without the session's CSRF header (as a form on another site would make) is not
    admitted by the cookie."""
    _login(web, page, web.user_key)
    [cookie] = page.page.context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert not cookie["value"].startswith("rk-")
    jar = {cookie["name"]: cookie["value"]}
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}
    without = httpx.post(f"{web.url}/v1/chat/completions", json=body, cookies=jar)
    assert without.status_code == 401
    forged = httpx.post(
        f"{web.url}/v1/chat/completions",
        json=body,
        cookies=jar,
        headers={"X-Rung-CSRF": "made-up"},
    )
    assert forged.status_code == 401
    csrf = page.page.get_attribute("main", "data-csrf")
    assert csrf
    with_token = httpx.post(
        f"{web.url}/v1/chat/completions", json=body, cookies=jar, headers={"X-Rung-CSRF": csrf}
    )
    assert with_token.status_code == 200, with_token.text


def test_a_flow_runs_from_its_form(web: WebServer, page: BrowserPage) -> None:
    _login(web, page, web.user_key)
    p = page.page
    p.goto(f"{web.url}/web/flows")
    section = p.locator("section.flow[data-flow=greet]")
    assert "ask (prompt)" in section.inner_text()
    section.locator("input[name=customer]").fill("Ada")
    section.locator("input[name=orders]").fill("4")
    section.locator("button[type=submit]").click()
    p.wait_for_selector("section.flow[data-flow=greet][data-state=done]", timeout=120_000)
    _shot(web, p, "flow-run")
    outputs = section.locator(".flow-output").inner_text()
    assert '"share": 25' in outputs and '"greeting":' in outputs
    steps = section.locator(".trace tbody tr")
    assert [steps.nth(i).locator("td").first.inner_text() for i in range(steps.count())] == [
        "ask",
        "reply",
        "per_order",
    ]
    assert steps.nth(1).locator("td").nth(2).inner_text() == "ok"
    # a bad input is the flow's error under the form, and the page stays usable
    section.locator("input[name=orders]").fill("many")
    section.locator("button[type=submit]").click()
    p.wait_for_selector("section.flow[data-flow=greet][data-state=error]")
    assert "orders" in section.locator(".error").inner_text()
    assert [e for e in page.errors if "400" not in e] == []


def test_the_keys_page_shows_usage_and_cost_from_the_ledger(
    web: WebServer, page: BrowserPage
) -> None:
    body = {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
    reply = httpx.post(
        f"{web.url}/v1/chat/completions",
        json=body,
        headers={"Authorization": f"Bearer {web.user_key}"},
        timeout=60,
    )
    assert reply.status_code == 200
    _login(web, page, web.admin_key)
    p = page.page
    p.goto(f"{web.url}/web/keys")
    user_row = p.locator("table.keys tbody tr", has_text="user")
    cells = user_row.locator("td")
    assert int(cells.nth(6).inner_text()) >= 1  # requests
    assert cells.nth(8).inner_text().startswith("$0.0")  # smollm2 is priced in this config
    assert "smollm2" in p.inner_text("table.by-model")
    assert "chat.completions" in p.inner_text("table.recent")
    _shot(web, p, "keys-with-usage")
    assert page.errors == []
