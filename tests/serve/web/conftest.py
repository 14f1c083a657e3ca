"""A real ``rung serve`` for the web page's tests: smollm2 and gemma-3-270m (two rungs that
generate), a compare run with its report.html, an admin key and a plain key; reached over a
real socket by headless Chromium (Debian's /usr/bin/chromium, driven by playwright; no
browser is downloaded). Screenshots go to $RUNG_TEST_ARTIFACTS/web, else to a temp folder the
first test prints."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rung.report.html import write_html
from rung.runs import RunFolder
from rung.serve import create_app, parse_config
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger
from tests.serve.conftest import write_run
from tests.serve.harness import AppHarness

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
#: one llama.cpp thread per model: the machine is shared (see tests/serve/conftest.py)
LLAMA_OPTIONS = {"n_threads": 1}
#: USD per million tokens, so that the playground has a cost to show
PRICE = {"input_per_mtok": 10.0, "output_per_mtok": 30.0}
#: a flow with a prompt, a model and a code step, run from the flows page's form
GREETING = """\
name: greet
description: A one-line greeting for a customer
inputs:
  customer: {type: string, description: The customer's first name}
  orders: {type: integer, default: 1}
steps:
  - id: ask
    type: prompt
    template: "Write one short friendly sentence greeting {{inputs.customer}}."
  - id: reply
    type: model
    model: llamacpp:smollm2-135m-instruct
    options: {n_threads: 1}
    prompt: "{{ask.output}}"
    max_tokens: 16
  - id: per_order
    type: code
    expr: "100 / inputs.orders"
outputs:
  greeting: "{{reply.output}}"
  share: "{{per_order.output}}"
"""


@dataclass
class WebServer:
    harness: AppHarness
    ledger: Ledger
    admin_key: str
    user_key: str
    artifacts: Path

    @property
    def url(self) -> str:
        return self.harness.base_url


@dataclass
class BrowserPage:
    """A page of a fresh browser profile, with what went wrong on it: console errors and
    uncaught exceptions."""

    page: Any
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="package")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    runs_dir = tmp_path_factory.mktemp("web-runs")
    write_run(runs_dir)
    folder = RunFolder(runs_dir / "fpb")
    write_html(folder.path / "report.html", folder.results(), [])
    (runs_dir / "greet.yaml").write_text(GREETING, encoding="utf-8")
    ledger_url = f"sqlite:///{tmp_path_factory.mktemp('web-ledger') / 'usage.db'}"
    config = parse_config(
        {
            "models": [
                {
                    "id": "llamacpp:smollm2-135m-instruct",
                    "name": "smollm2",
                    "options": LLAMA_OPTIONS,
                    "price": PRICE,
                },
                {"id": "llamacpp:gemma-3-270m", "name": "gemma", "options": LLAMA_OPTIONS},
            ],
            "auth": {"required": True},
            "runs_dir": str(runs_dir),
            "web": {"admins": ["admin"]},
            "flows": ["greet.yaml"],
        },
        base_dir=runs_dir,
    )
    explicit = os.environ.get("RUNG_TEST_ARTIFACTS")
    artifacts = (
        Path(explicit) / "web" if explicit else Path(tempfile.mkdtemp(prefix="rung-web-shots-"))
    )
    artifacts.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_CACHE_DIR", str(tmp_path_factory.mktemp("web-cache")))
        harness = AppHarness(create_app(config, ledger_url=ledger_url)).start(http=True)
        ledger = Ledger(ledger_url)
        try:
            admin_key = create_key(ledger, "admin")[1]
            user_key = create_key(ledger, "user")[1]
            yield WebServer(harness, ledger, admin_key, user_key, artifacts)
        finally:
            ledger.close()
            harness.stop()


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium (make system-deps)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[BrowserPage]:
    """A page in a context of its own: no cookie from another test. (playwright starts the
    browser on a fresh temporary user-data-dir of its own.)"""
    context = browser.new_context()
    seen = BrowserPage(context.new_page())
    seen.page.on(
        "console",
        lambda m: seen.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    seen.page.on("pageerror", lambda e: seen.errors.append(f"page error: {e}"))
    seen.page.set_default_timeout(30_000)
    try:
        yield seen
    finally:
        context.close()
