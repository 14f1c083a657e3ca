"""rung route on a text task's run, end to end: the bundled SmolLM2 and Gemma 3 translate
French → English pairs, each answer recorded with its chrF and its mean token probability, and
`rung route calibrate` weighs cascades of the two on chrF."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rung.cli.main import app
from rung.route.cascade import CascadeOptions
from rung.runs import PredictionRow
from tests.fixture_data import fr_en_translate

runner = CliRunner()


def test_route_calibrate_weighs_translation_cascades_on_chrf(tmp_path: Path) -> None:
    spec = tmp_path / "fr-en.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "fr-en route",
                "task": {
                    **fr_en_translate(),
                    "splits": {"test_size": 10, "train_size": 6, "seed": 1},
                    "prompt": {
                        "instructions": "Translate the text from French to English. Answer "
                        "with the translation only.",
                        "max_tokens": 24,
                        "shots": 2,
                    },
                },
                "models": ["llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"],
                "measure": {"bootstrap": 200, "load": None, "memory": False},
            }
        ),
        encoding="utf-8",
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = [
        PredictionRow.model_validate_json(line)
        for line in (out / "predictions.jsonl").read_text().splitlines()
    ]
    assert len(rows) == 20
    assert all(r.confidence is not None and 0 < r.confidence <= 1 for r in rows)
    cascades = tmp_path / "serve.yaml"
    routed = runner.invoke(
        app,
        [
            "route", "calibrate", str(out), "--target", "0.9", "--json", "--resamples", "200",
            "--rungs", "llamacpp:smollm2-135m-instruct,llamacpp:gemma-3-270m",
            "--out", str(cascades), "--name", "fr-en",
        ],
    )  # fmt: skip
    assert routed.exit_code == 0, routed.output
    cal = json.loads(routed.stdout)
    assert cal["metric"] == "chrf"
    # the rungs' confidences split the examples: two-rung cascades were weighed, not only
    # each rung alone
    assert cal["evaluated"] > 2
    assert not any("recorded a confidence" in n for n in cal["notes"])
    assert cal["chosen"]["accuracy"]["value"] >= 0.9 * cal["top_accuracy"] - 1e-9
    # the cascade it writes generates on /v1/chat/completions, climbing on token probability
    section = yaml.safe_load(cascades.read_text())["cascades"]["fr-en"]
    assert section["confidence"] == "tokens" and "labels" not in section
    assert CascadeOptions.model_validate(section).confidence == "tokens"
    print(
        f"top {cal['top']} chrF {cal['top_accuracy']:.1f}; chosen "
        f"{[(p['rung'], p['threshold']) for p in cal['chosen']['policy']]} chrF "
        f"{cal['chosen']['accuracy']['value']:.1f}, saving {cal['chosen']['saving']}"
    )
