"""rung demo: the bundled ladder, and an LLM rung that joins when an endpoint is configured."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.datasets import DEMO_RUNGS, FPB_ALLAGREE, demo_spec
from tests.llama_server import running_llama_server

runner = CliRunner()


def test_bundled_data_carries_its_license() -> None:
    folder = FPB_ALLAGREE.parent
    assert FPB_ALLAGREE.stat().st_size == 299_636
    license_text = (folder / "License.txt").read_text(encoding="latin-1")
    assert "Attribution-NonCommercial-ShareAlike 3.0" in license_text
    assert "Malo" in (folder / "SOURCE.md").read_text(encoding="utf-8")


def test_llm_rung_joins_only_when_configured() -> None:
    spec, _ = demo_spec(environ={})
    assert [m.id for m in spec.models] == DEMO_RUNGS
    spec, _ = demo_spec(environ={"OPENAI_API_KEY": "sk-test"})
    assert spec.models[-1].id == "openai:gpt-4o-mini"
    spec, _ = demo_spec(
        environ={"RUNG_OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "RUNG_OPENAI_MODEL": "qwen"}
    )
    assert spec.models[-1].id == "openai:qwen"


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    with running_llama_server() as base_url:
        yield base_url


def test_demo_runs_the_ladder_with_an_llm_rung(
    tmp_path: Path, llama_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A real OpenAI-compatible server (llama_cpp.server with the bundled SmolLM2) plays the LLM.
    monkeypatch.setenv("RUNG_OPENAI_BASE_URL", llama_server)
    monkeypatch.setenv("RUNG_OPENAI_MODEL", "smollm2")
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--test-size", "12", "--out", str(out), "--quick"])
    assert result.exit_code == 0, result.output + result.stderr
    assert "report.md" in result.output
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    models = [r["model"] for r in results["rungs"]]
    assert models == [*DEMO_RUNGS, "openai:smollm2"]
    llm = results["rungs"][-1]
    assert llm["n"] == 12 and llm["tokens"]["in_per_request"] > 0
    # the endpoint is on this machine: it is priced as self-hosted machine time, not per token
    assert llm["cost"]["basis"] == "machine"
