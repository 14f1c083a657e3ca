"""`rung serve` itself: the schema, a config error as one line, and a real server process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from rung.cli import serve_cmds
from tests.serve.conftest import LABELS
from tests.serve.harness import free_port

# main.py registers serve_cmds the same way; this app stands in for it
APP_CODE = "import typer; from rung.cli import serve_cmds; app = typer.Typer(); serve_cmds.register(app); app()"


def _app() -> typer.Typer:
    app = typer.Typer()
    serve_cmds.register(app)
    return app


def test_schema_is_printed() -> None:
    result = CliRunner().invoke(_app(), ["serve", "--schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"models", "cascades", "auth", "limits", "ledger"} <= set(schema["properties"])


def test_config_errors_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("models:\n  - id: llamacpp:smollm2-135m-instruct\n    nmae: x\n")
    result = CliRunner().invoke(_app(), ["serve", str(config)])
    assert result.exit_code == 2
    assert "unknown field 'models.0.nmae'" in result.output
    config.write_text("models:\n  - llamacpp:smolm2\n")
    result = CliRunner().invoke(_app(), ["serve", str(config)])
    assert result.exit_code == 2
    assert "unknown llamacpp model 'smolm2'" in result.output
    assert "smollm2-135m-instruct" in result.output


def test_a_model_that_trains_needs_training_data(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("models:\n  - encoder:minilm-l6\n")
    result = CliRunner().invoke(_app(), ["serve", str(config)])
    assert result.exit_code == 2
    assert "add train: {path: ...}" in result.output


def test_serve_runs_a_server(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"id": "llamacpp:smollm2-135m-instruct", "name": "smollm2", "labels": LABELS}
                ],
                "auth": {"required": False},
                "ledger": {"url": "sqlite:///usage.db"},
            }
        )
    )
    port = free_port()
    env = os.environ | {"RUNG_CACHE_DIR": str(tmp_path / "cache")}
    server = subprocess.Popen(
        [sys.executable, "-c", APP_CODE, "serve", str(config), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.communicate()[0]
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not come up"
            time.sleep(0.2)
        r = httpx.post(
            f"{base}/v1/classify", json={"model": "smollm2", "input": "Profit rose."}, timeout=60
        )
        assert r.status_code == 200, r.text
        assert r.json()["data"][0]["label"] in LABELS
        server.send_signal(signal.SIGINT)
        output = server.communicate(timeout=30)[0]
        assert server.returncode == 0, output
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # the relative SQLite ledger lies beside the config, with the request in it
    assert (tmp_path / "usage.db").is_file()


@pytest.mark.parametrize("command", [["keys", "list"], ["keys", "create", "--name", "x"]])
def test_keys_commands_use_the_config_ledger(tmp_path: Path, command: list[str]) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("ledger: {url: 'sqlite:///keys.db'}\n")
    result = CliRunner().invoke(_app(), [*command, "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "keys.db").is_file()


@pytest.mark.usefixtures("segfault_plugin")
def test_a_rung_that_crashes_is_refused_at_startup(tmp_path: Path) -> None:
    """A model whose native code kills its process is loaded in a probe process first: the
    server refuses to start with one line naming it and the signal, and loads nothing."""
    config = tmp_path / "serve.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "models": [
                    {"id": "llamacpp:smollm2-135m-instruct", "name": "smollm2", "labels": LABELS},
                    {"id": "segfault:on-load", "name": "fragile", "labels": LABELS},
                ],
                "auth": {"required": False},
            }
        )
    )
    result = CliRunner().invoke(_app(), ["serve", str(config)])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())  # Rich wraps the one line at the terminal's width
    assert "fragile cannot be served: segfault:on-load crashed while loading (SIGSEGV" in line
    assert "remove it from the serve config" in line
    config.write_text(
        yaml.safe_dump(
            {
                "models": [{"id": "segfault:never", "labels": LABELS}],
                "cascades": {
                    "c": {
                        "rungs": [
                            {"model": "segfault:never", "threshold": 0.9},
                            {"model": "segfault:on-answer"},
                        ],
                        "labels": LABELS,
                    }
                },
                "auth": {"required": False},
            }
        )
    )
    result = CliRunner().invoke(_app(), ["serve", str(config)])
    assert result.exit_code == 2, result.output
    line = " ".join(result.output.split())
    assert "cascade:c cannot be served: segfault:on-answer crashed while answering" in line
