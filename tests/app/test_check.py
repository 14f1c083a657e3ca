"""The baseline read from a git ref (``rung check --against``): a run folder committed in a
real repository, read back as the commit holds it while the working tree holds another."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.app.check import baseline_at_ref
from rung.cli.main import app
from rung.errors import DataError
from rung.runs import RunFolder
from tests.check.runs import run_data


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    run = run_data({"small": 70})
    RunFolder(repo / "runs" / "fpb").write_files(
        {
            "results.json": run.results.to_text(),
            "predictions.jsonl": "".join(p.to_line() + "\n" for p in run.predictions),
        }
    )
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "base")
    # The working tree moves on: the baseline must come from the commit.
    changed = run_data({"small": 10})
    (repo / "runs" / "fpb" / "results.json").write_text(changed.results.to_text())
    return repo


def test_the_baseline_as_the_ref_holds_it(repo: Path, tmp_path: Path) -> None:
    dest = baseline_at_ref("main", repo / "runs" / "fpb", tmp_path / "baseline")
    folder = RunFolder(dest)
    assert folder.results().rungs[0].quality.accuracy.value == 0.7
    assert len(folder.predictions()) == 100


def test_an_unknown_ref_or_path_is_one_line(repo: Path, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nosuch holds no run folder at runs/fpb"):
        baseline_at_ref("nosuch", repo / "runs" / "fpb", tmp_path / "a")
    with pytest.raises(DataError, match="main holds no run folder at runs/other"):
        baseline_at_ref("main", repo / "runs" / "other", tmp_path / "b")


def test_rung_check_against_an_unknown_ref_exits_2(repo: Path, fpb_path: Path) -> None:
    spec = repo / "spec.yaml"
    spec.write_text(
        f"task: {{type: classify, data: {{path: {fpb_path}}}}}\nmodels: [encoder:minilm-l6]\n"
    )
    result = CliRunner().invoke(
        app, ["check", str(spec), "--baseline", str(repo / "runs" / "fpb"), "--against", "nosuch"]
    )
    assert result.exit_code == 2
    assert "nosuch holds no run folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
