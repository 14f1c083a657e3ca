"""rung check on a text task, end to end with the bundled Gemma 3 270M (a base model, asked with
a few-shot completion) on French → English pairs: the same spec again passes (its answers come
from the cache, every delta is 0), a worse prompt (the shots dropped: chrF falls from about 75
to about 17) fails with exit 1 with the paired bootstrap, and a spec that draws other test
items is refused before any rung is asked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner, Result

from rung.cli.main import app
from tests.fixture_data import fr_en_translate

runner = CliRunner()

INSTRUCTIONS = "Translate the text from French to English. Answer with the translation only."
GOOD = 2
#: the injected regression: the prompt without its two examples
WORSE = 0


def _spec(tmp: Path, name: str, shots: int, test_size: int = 8) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "fr-en check",
                "task": {
                    **fr_en_translate(),
                    "splits": {"test_size": test_size, "train_size": 6, "seed": 1},
                    "prompt": {"instructions": INSTRUCTIONS, "max_tokens": 24, "shots": shots},
                },
                "models": ["llamacpp:gemma-3-270m"],
                "measure": {"bootstrap": 200, "load": None, "memory": False},
                "check": {"margins": {"chrf": 2.0, "bleu": 2.0}},
            }
        ),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("translate-baseline")
    out = tmp / "run"
    # a module's fixture is made before each test's own cache is set: it gets one of its own
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_CACHE_DIR", str(tmp / "cache"))
        result = runner.invoke(app, ["compare", str(_spec(tmp, "base", GOOD)), "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    return out


def _check(spec: Path, baseline: Path, tmp_path: Path) -> Result:
    """`rung check SPEC` against the baseline, into tmp_path/run, its verdict in check.json."""
    return runner.invoke(
        app,
        [
            "check", str(spec), "--baseline", str(baseline), "--out", str(tmp_path / "run"),
            "--json", str(tmp_path / "check.json"),
        ],
    )  # fmt: skip


def test_the_same_translate_spec_passes(baseline: Path, tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    result = _check(_spec(tmp_path, "same", GOOD), baseline, tmp_path)
    assert result.exit_code == 0, result.output + result.stderr
    assert "✅ passed" in result.stdout
    data = json.loads(report.read_text(encoding="utf-8"))
    tested = {c["metric"]: c for c in data["quality"]}
    # The metrics the run reported with an interval, per item; not the lengths beside them.
    assert set(tested) == {"bleu", "chrf"}
    assert all(c["kind"] == "continuous" and c["delta"] == 0.0 for c in tested.values())
    assert tested["chrf"]["n"] == 8 and tested["chrf"]["margin"] == 2.0


def test_a_worse_prompt_fails_the_gate(baseline: Path, tmp_path: Path) -> None:
    report = tmp_path / "check.json"
    result = _check(_spec(tmp_path, "worse", WORSE), baseline, tmp_path)
    assert result.exit_code == 1, result.output + result.stderr
    assert "❌ failed" in result.stdout
    chrf = next(c for c in json.loads(report.read_text())["quality"] if c["metric"] == "chrf")
    assert chrf["verdict"] == "regressed" and chrf["delta"] < -20 and chrf["p_holm"] < 0.05


def test_other_items_are_refused(baseline: Path, tmp_path: Path) -> None:
    result = _check(_spec(tmp_path, "fewer", GOOD, test_size=6), baseline, tmp_path)
    assert result.exit_code == 2, result.output + result.stderr
    assert "test items differ from those of the baseline run" in result.stderr
    # refused before any rung was asked: no run folder was written
    assert not (tmp_path / "run").exists()


def test_the_run_records_chrfs_scale_and_advice_reads_it_as_a_fraction(baseline: Path) -> None:
    results = json.loads((baseline / "results.json").read_text(encoding="utf-8"))
    quality = results["rungs"][0]["quality"]
    assert quality["scales"] == {"bleu": 100.0, "chrf": 100.0}
    chrf = quality["scores"]["chrf"]["value"]
    # a floor just under the run's chrF passes it, one just over refuses it: both as fractions
    below = runner.invoke(app, ["advise", str(baseline), "--min-quality", f"chrf={chrf / 100 - 0.05:.3f}", "--json"])  # fmt: skip
    above = runner.invoke(app, ["advise", str(baseline), "--min-quality", f"chrf={chrf / 100 + 0.05:.3f}", "--json"])  # fmt: skip
    assert below.exit_code == 0 and above.exit_code == 0, below.output + above.output
    assert json.loads(below.stdout)["recommended"] is not None
    assert json.loads(above.stdout)["recommended"] is None
    # each answer carries how sure the rung was: its mean token probability under llama.cpp
    rows = [json.loads(line) for line in (baseline / "predictions.jsonl").read_text().splitlines()]
    assert rows and all(0 < r["confidence"] <= 1 for r in rows)
    assert len({round(r["confidence"], 6) for r in rows}) > 1
