"""rung check end to end with the bundled MiniLM encoder on a slice of the financial
phrasebank: a no-op change passes, a rung trained on far fewer examples fails with exit 1, a
spec that draws other test items is refused with exit 2."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.runs import RunFolder
from rung.runs.items import items_sha256_of_rows

runner = CliRunner()


def _spec(tmp_path: Path, fpb_path: Path, name: str, train_size: int, test_size: int = 80) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""name: fpb check
task:
  type: classify
  data: {{path: {fpb_path}}}
  labels: [negative, neutral, positive]
  train_size: {train_size}
  test_size: {test_size}
  seed: 3
models: [encoder:minilm-l6]
measure: {{load: null, memory: false}}
check:
  margins: {{accuracy: 0.02}}
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def baseline(fpb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("baseline")
    out = tmp / "run"
    result = runner.invoke(
        app, ["compare", str(_spec(tmp, fpb_path, "base", 240)), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output + result.stderr
    return out


def test_a_baseline_run_records_its_items_hash(baseline: Path) -> None:
    task = json.loads((baseline / "results.json").read_text(encoding="utf-8"))["task"]
    # A run written before results.json held the hash gets the same one from its predictions.
    assert task["items_sha256"] == items_sha256_of_rows(RunFolder(baseline).predictions())


def test_the_same_spec_passes(baseline: Path, fpb_path: Path, tmp_path: Path) -> None:
    junit, report = tmp_path / "junit.xml", tmp_path / "check.json"
    result = runner.invoke(
        app,
        [
            "check",
            str(_spec(tmp_path, fpb_path, "same", 240)),
            "--baseline",
            str(baseline),
            "--out",
            str(tmp_path / "run"),
            "--junit",
            str(junit),
            "--json",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output + result.stderr
    assert "## rung check: fpb check: ✅ passed" in result.stdout
    assert "| encoder:minilm-l6 | accuracy |" in result.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["passed"] is True and data["quality"][0]["delta"] == 0.0
    root = ET.parse(junit).getroot()
    assert root.get("tests") == "1" and root.get("failures") == "0"


def test_a_rung_trained_on_a_handful_of_examples_fails(
    baseline: Path, fpb_path: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "junit.xml"
    result = runner.invoke(
        app,
        [
            "check",
            str(_spec(tmp_path, fpb_path, "worse", 6)),
            "--baseline",
            str(baseline),
            "--out",
            str(tmp_path / "run"),
            "--junit",
            str(junit),
        ],
    )
    assert result.exit_code == 1, result.output + result.stderr
    assert "❌ failed" in result.stdout and "❌ regressed" in result.stdout
    case = ET.parse(junit).getroot().find("testcase")
    assert case is not None and case.find("failure") is not None


def test_other_test_items_are_refused(baseline: Path, fpb_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(
        app,
        [
            "check",
            str(_spec(tmp_path, fpb_path, "other", 240, test_size=70)),
            "--baseline",
            str(baseline),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2
    assert "test items differ from those of the baseline run" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    # Refused before any rung was asked: no run was written.
    assert not out.exists()


def test_the_baseline_is_not_overwritten(baseline: Path, fpb_path: Path, tmp_path: Path) -> None:
    spec = _spec(tmp_path, fpb_path, "same", 240)
    result = runner.invoke(
        app, ["check", str(spec), "--baseline", str(baseline), "--out", str(baseline)]
    )
    assert result.exit_code == 2 and "is the baseline run" in result.stderr
