"""``rung flow check`` and ``rung flow run``, and ``rung serve`` refusing a broken flow."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from rung.cli.main import app
from tests.flows.conftest import write_flow

GATE = """
name: gate
inputs:
  n: integer
  word: {type: string, default: hello}
steps:
  - {id: score, type: code, expr: "inputs.n / 10"}
  - {id: pick, type: route, by: "{{score.output}}", threshold: 0.5, above: high, below: low}
  - {id: high, type: prompt, template: "high {{inputs.word}}"}
  - {id: low, type: prompt, template: "low {{inputs.word}}"}
outputs:
  said: "{{high.output}}{{low.output}}"
"""


def test_check_and_run(tmp_path: Path) -> None:
    path = write_flow(tmp_path, GATE)
    r = CliRunner().invoke(app, ["flow", "check", str(path)])
    assert r.exit_code == 0, r.output
    assert "ok gate version" in r.output and "score (code) -> pick (route)" in r.output

    r = CliRunner().invoke(app, ["flow", "run", str(path), "-i", "n=9", "--json"])
    assert r.exit_code == 0, r.output
    result = json.loads(r.output)
    assert result["outputs"] == {"said": "high hello"}
    assert [t["status"] for t in result["trace"]] == ["ok", "ok", "ok", "skipped"]

    r = CliRunner().invoke(app, ["flow", "run", str(path), "--input", "n=1", "-i", "word=bye"])
    assert r.exit_code == 0, r.output
    assert "said: low bye" in r.output and "skipped" in r.output


def test_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    broken = write_flow(tmp_path, GATE.replace("{{score.output}}", "{{scor.output}}"))
    r = CliRunner().invoke(app, ["flow", "check", str(broken)])
    assert r.exit_code == 2
    assert f"{broken}:7:" in r.output and "unknown step 'scor'" in r.output

    good = write_flow(tmp_path, GATE, "good.yaml")
    r = CliRunner().invoke(app, ["flow", "run", str(good), "-i", "n"])
    assert r.exit_code == 2 and "not of the form name=value" in r.output
    r = CliRunner().invoke(app, ["flow", "run", str(good)])
    assert r.exit_code == 2 and "needs the input 'n'" in r.output

    config = tmp_path / "serve.yaml"
    config.write_text(f"flows: [{broken.name}]\nauth: {{required: false}}\n", encoding="utf-8")
    r = CliRunner().invoke(
        app, ["serve", str(config), "--ledger", f"sqlite:///{tmp_path / 'l.db'}"]
    )
    assert r.exit_code == 2, r.output
    assert f"{broken}:7:" in r.output and "unknown step 'scor'" in r.output
