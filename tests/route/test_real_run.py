"""Calibrate, simulate and serve a cascade from a real compare run of the bundled rungs on the
financial phrasebank."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import typer
import yaml
from typer.testing import CliRunner

from rung.app import compare_spec
from rung.cli import route_cmds
from rung.models import registry
from rung.models.base import run_sync
from rung.route import Policy, RunTable, calibrate, load_run, simulate
from rung.route.cascade import CascadeModel
from rung.route.config import cascade_section, policy_of, read_cascade
from rung.route.simulate import replay
from rung.runs import RunFolder, parse_spec
from rung.tasks.classify import build_requests, load_task_data

ENCODER, GEMMA, SMOL = (
    "encoder:minilm-l6",
    "llamacpp:gemma-3-270m",
    "llamacpp:smollm2-135m-instruct",
)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory, fpb_path: Path) -> Path:
    # module-scoped: the per-test cache fixture is not active yet, so the run skips the cache
    # and gemma's assembled file goes to the session-wide folder the other tests use
    files = tmp_path_factory.getbasetemp() / "rung-files"
    files.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_FILES_DIR", str(files))
        mp.setenv("RUNG_CACHE_DIR", str(tmp_path_factory.mktemp("route-cache")))
        spec = parse_spec(
            {
                "name": "route test",
                "task": {
                    "type": "classify",
                    "data": {"path": str(fpb_path)},
                    "labels": ["negative", "neutral", "positive"],
                    "train_size": 300,
                    "test_size": 48,
                    "seed": 0,
                    "prompt": {"shots": 1},
                    # A served cascade asks its rungs as configured, without the words, shots
                    # and correction a compare run chose for them: the run must not choose any
                    # for its replay to match what the cascade serves.
                    "calibration": {"method": "none"},
                },
                "models": [ENCODER, GEMMA, SMOL],
                "measure": {"load": None, "memory": False},
            }
        )
        out = tmp_path_factory.mktemp("route-run") / "run"
        compare_spec(spec, fpb_path.parent, out, use_cache=False)
    return out


def _app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

    @app.callback()
    def main() -> None:
        """rung (test app)"""

    route_cmds.register(app)
    return app


def test_calibration_on_a_real_run_keeps_the_target(run_dir: Path) -> None:
    table = load_run(run_dir)
    assert table.n == 48 and set(table.names()) == {ENCODER, GEMMA, SMOL}
    cal = calibrate(table, 0.99)
    results = RunFolder(run_dir).results()
    by_cost = sorted(results.rungs, key=lambda r: r.cost_usd_per_1k or 0.0)
    assert cal.order == tuple(r.label for r in by_cost)
    best = max(results.rungs, key=lambda r: r.quality.accuracy.value)
    assert cal.top_accuracy == pytest.approx(best.quality.accuracy.value)
    assert cal.chosen.accuracy.value >= 0.99 * cal.top_accuracy - 1e-12
    assert sum(s.answered.value for s in cal.chosen.shares) == pytest.approx(1.0)
    assert cal.cost_basis == "usd"
    assert cal.chosen.cost_per_request.value <= cal.chosen.reference_cost_per_request + 1e-15
    accs = [p.accuracy for p in cal.curve]
    assert all(b > a for a, b in itertools.pairwise(accs))
    # a one-rung replay gives the interval the compare run reported
    top = simulate(table, Policy((cal.top,), (None,)))
    assert list(top.accuracy.ci95) == pytest.approx(best.quality.accuracy.ci95)


def test_the_cli_writes_a_cascade_and_replays_it(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    out, plot = tmp_path / "serve.yaml", tmp_path / "curve.html"
    out.write_text("models:\n- id: encoder:minilm-l6\n", encoding="utf-8")
    args = ["route", "calibrate", str(run_dir), "--target", "0.99", "--name", "fpb"]
    result = runner.invoke(app, [*args, "--out", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    assert "Cascade fpb" in result.output and "had everything gone to" in result.output
    written = yaml.safe_load(out.read_text(encoding="utf-8"))
    assert written["models"] == [{"id": "encoder:minilm-l6"}]  # the rest of the file is kept
    entry = written["cascades"]["fpb"]
    assert entry["labels"] == ["negative", "neutral", "positive"]
    assert entry["prompt"]["shots"] == 1
    assert all("cost_usd_per_1k" in r for r in entry["rungs"])
    page = plot.read_text(encoding="utf-8")
    # self-contained: plotly.js inline, nothing fetched from a CDN
    assert "Plotly.newPlot" in page and 'src="https://cdn.plot.ly' not in page
    assert len(page) > 1_000_000

    as_json = runner.invoke(app, [*args, "--json"])
    assert as_json.exit_code == 0, as_json.output
    cal = json.loads(as_json.output)
    simulated = runner.invoke(
        app, ["route", "simulate", str(run_dir), "--cascade", str(out), "--json"]
    )
    assert simulated.exit_code == 0, simulated.output
    sim = json.loads(simulated.output)
    assert sim["name"] == "fpb"
    assert sim["accuracy"] == cal["chosen"]["accuracy"]
    assert sim["cost"]["value"] == pytest.approx(cal["chosen"]["cost"]["value"])
    assert sum(s["answered"]["value"] for s in sim["shares"]) == pytest.approx(1.0)
    table = runner.invoke(app, ["route", "simulate", str(run_dir), "--cascade", str(out)])
    assert table.exit_code == 0 and "answers" in table.output


def test_bad_input_exits_2_with_a_message(run_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    app = _app()
    cases = [
        (["route", "calibrate", str(tmp_path)], "no predictions.jsonl"),
        (["route", "calibrate", str(run_dir), "--target", "1.2"], "outside (0, 1]"),
        (["route", "calibrate", str(run_dir), "--rungs", "encoder:minilm"], "did you mean"),
        (["route", "simulate", str(run_dir), "--cascade", str(tmp_path / "no.yaml")], "not found"),
    ]
    for args, message in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in " ".join(result.stderr.split()), (args, result.stderr)


def test_a_served_cascade_answers_as_the_replay_of_its_run_says(run_dir: Path) -> None:
    """The thresholds mean the same thing in the served cascade as in the replay: the served
    cascade, trained on the run's training split, sends each example to the rung the replay
    sends it to, and gives that rung's answer from the run."""
    table = load_run(run_dir)
    median = float(np.median(table.rung(ENCODER).confidence))
    policy = Policy((ENCODER, SMOL), (median, None))
    run_spec = RunFolder(run_dir).spec()
    assert run_spec is not None
    section = cascade_section(policy, table, run_spec)
    config = run_dir.parent / "cascade.yaml"
    config.write_text(yaml.safe_dump({"cascades": {"e2e": section}}), encoding="utf-8")
    name, options = read_cascade(config)
    assert policy_of(options, table) == Policy((ENCODER, SMOL), (options.rungs[0].threshold, None))

    model = registry.create(f"cascade:{name}", options.model_dump())
    assert isinstance(model, CascadeModel)
    data = load_task_data(run_spec.task, run_dir)
    requests = build_requests(run_spec.task, data)[:24]
    model.load()
    model.fit([ex.text for ex in data.train], [ex.label for ex in data.train], list(data.labels))
    try:
        answers = run_sync(model.classify_traced(requests))
    finally:
        model.close()
    sub = _first(table, 24)
    assert [ex.id for ex in data.test[:24]] == list(sub.ids)
    who, expected = replay(sub, policy_of(options, sub))
    names = [ENCODER, SMOL]
    assert {a.answered_by for a in answers} == set(names)
    for a, k, label in zip(answers, who, expected, strict=True):
        assert a.answered_by == names[k]
        assert a.prediction.label == label


def _first(table: RunTable, n: int) -> RunTable:
    return table.subset(list(range(n)))
