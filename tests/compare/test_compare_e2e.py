"""rung compare end to end with real bundled models on the financial phrasebank."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.runs import RECORD_VERSION, RunFolder

runner = CliRunner()


def _spec(
    tmp_path: Path,
    fpb_path: Path,
    models: str,
    test_size: int,
    train_size: int = 200,
    measure: str = "{load: null, memory: false}",
    calibration: str = "{}",
) -> Path:
    path = tmp_path / "fpb.yaml"
    path.write_text(
        f"""name: fpb test
task:
  type: classify
  data: {{path: {fpb_path}}}
  labels: [negative, neutral, positive]
  train_size: {train_size}
  test_size: {test_size}
  seed: 1
  calibration: {calibration}
models: {models}
measure: {measure}
""",
        encoding="utf-8",
    )
    return path


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_compare_writes_a_complete_run_and_reruns_from_cache(
    tmp_path: Path, fpb_path: Path
) -> None:
    spec = _spec(
        tmp_path,
        fpb_path,
        "[encoder:minilm-l6, llamacpp:smollm2-135m-instruct]",
        test_size=24,
        measure="{load: {concurrency: [1, 4], requests: 12}, memory: true}",
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output + result.stderr
    assert "report.md" in result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "predictions.jsonl",
        "report.html",
        "report.md",
        "results.json",
        "spec.yaml",
    ]

    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["model"] for r in results["rungs"]] == [
        "encoder:minilm-l6",
        "llamacpp:smollm2-135m-instruct",
    ]
    for rung in results["rungs"]:
        assert rung["n"] == 24
        acc = rung["quality"]["accuracy"]
        assert 0.0 <= acc["ci95"][0] <= acc["value"] <= acc["ci95"][1] <= 1.0
        assert 0.0 <= rung["quality"]["macro_f1"]["value"] <= 1.0
        assert 0 < rung["latency_ms"]["p50"] <= rung["latency_ms"]["p95"]
        assert rung["throughput_per_s"] > 0
        assert rung["load_s"] is not None and rung["load_s"] > 0
        assert rung["params"] and rung["file_size_bytes"]
        matrix = rung["quality"]["confusion"]["matrix"]
        assert sum(map(sum, matrix)) == 24
        assert rung["cached"] == 0
        # speed under load, memory and money (issue 3)
        assert rung["latency_ms"]["p95"] <= rung["latency_ms"]["p99"]
        assert [lv["concurrency"] for lv in rung["load"]] == [1, 4]
        for level in rung["load"]:
            assert level["requests"] == 12 and level["errors"] == 0
            assert level["throughput_per_s"] > 0
            assert (
                0
                < level["latency_ms"]["p50"]
                <= level["latency_ms"]["p95"]
                <= level["latency_ms"]["p99"]
            )
        memory = rung["memory_mb"]
        # the process holds at least the weights file once the model is loaded
        assert memory["peak_rss"] > memory["baseline_rss"] > 0
        assert memory["model_rss"] > 0.8 * memory["file"]
        assert memory["estimate"] is not None and memory["estimate"] > memory["file"]
        assert rung["cost_usd_per_1k"] > 0 and rung["cost"]["basis"] == "machine"
    encoder, smol = results["rungs"]
    # time to first token for the generative rung at each level; none for the encoder
    assert all(lv["ttft_ms"] is None for lv in encoder["load"])
    for level in smol["load"]:
        assert 0 < level["ttft_ms"]["p50"] <= level["ttft_ms"]["p95"]
    priced = {row["model"]: row for row in results["counterfactual"]}
    assert priced["openai:gpt-4o-mini"]["usd_per_1k"] > 0
    assert not priced["openai:gpt-4o-mini"]["in_ladder"]
    assert encoder["fit_s"] > 0 and smol["fit_s"] is None
    assert 20_000_000 < encoder["params"] < 25_000_000  # all-MiniLM-L6-v2: 22.7M
    assert smol["tokens"]["in_per_request"] > 20
    # the frozen encoder with a trained head is far above chance (0.33) on this data
    assert encoder["quality"]["accuracy"]["value"] > 0.6
    # the generative rung was calibrated on training examples; the encoder was not
    assert encoder["calibration"]["method"] == "none" and encoder["quality_raw"] is None
    cal = smol["calibration"]
    assert cal["method"] == "fitted" and cal["examples"] == 60
    words = "/".join(cal["verbalizer"][lab] for lab in ("negative", "neutral", "positive"))
    assert f"0 shots, {words}" in cal["candidates"]
    assert smol["quality_raw"]["confusion"]["labels"] == ["negative", "neutral", "positive"]
    # the guessing baselines: always the training split's majority class, and uniform
    baselines = {b["name"]: b for b in results["baselines"]}
    assert set(baselines) == {"majority class", "random"}
    assert baselines["random"]["accuracy"]["value"] == pytest.approx(1 / 3)
    assert baselines["majority class"]["rule"] == "always 'neutral'"

    preds = _lines(out / "predictions.jsonl")
    assert len(preds) == 48
    assert {p["rung"] for p in preds} == {"encoder:minilm-l6", "llamacpp:smollm2-135m-instruct"}
    for p in preds:
        assert set(p) >= {"id", "text", "gold", "predicted", "confidence", "latency_ms"}
        assert p["predicted"] in ("negative", "neutral", "positive")
        assert 0.0 <= float(p["confidence"]) <= 1.0  # type: ignore[arg-type]
    smol_rows = [p for p in preds if p["rung"] == "llamacpp:smollm2-135m-instruct"]
    assert all(p["predicted_raw"] in ("negative", "neutral", "positive") for p in smol_rows)
    assert all(set(p["scores_raw"]) == {"negative", "neutral", "positive"} for p in smol_rows)
    report = (out / "report.md").read_text(encoding="utf-8")
    assert "| encoder:minilm-l6 |" in report and "Confusion matrix" in report
    assert "| *majority class: always 'neutral'* |" in report
    assert "## Calibration" in report and "| llamacpp:smollm2-135m-instruct | fitted |" in report

    spec_as_run = (out / "spec.yaml").read_text(encoding="utf-8")
    assert str(fpb_path) in spec_as_run and "bootstrap: 1000" in spec_as_run

    # The folder reads back as the typed record, and writing it again gives the same text.
    folder = RunFolder(out)
    record = folder.results()
    assert record.to_text() == (out / "results.json").read_text(encoding="utf-8")
    assert results["record_version"] == RECORD_VERSION and "failed" not in results
    rows = folder.predictions()
    assert [r.to_line() for r in rows] == (out / "predictions.jsonl").read_text(
        encoding="utf-8"
    ).splitlines()
    ran = folder.spec()
    assert ran is not None and ran.task.data.path == fpb_path

    # Again: every answer comes from the cache, the figures stay the same.
    started = time.perf_counter()
    again = runner.invoke(app, ["compare", str(spec), "--out", str(out)])
    elapsed = time.perf_counter() - started
    assert again.exit_code == 0, again.output
    results2 = json.loads((out / "results.json").read_text(encoding="utf-8"))
    for first, second in zip(results["rungs"], results2["rungs"], strict=True):
        assert second["cached"] == 24
        assert second["quality"] == first["quality"]
        assert second["latency_ms"] == first["latency_ms"]
    assert elapsed < 10, f"a fully cached run took {elapsed:.1f}s: something was recomputed"


def _answers_in_cache(cache: Path) -> int:
    db = cache / "responses.sqlite"
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=1) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0])
    except sqlite3.OperationalError:
        return 0


def _start(spec: Path, out: Path, cache: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RUNG_CACHE_DIR": str(cache)}
    return subprocess.Popen(
        [sys.executable, "-m", "rung.cli.main", "compare", str(spec), "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_answers(
    proc: subprocess.Popen[bytes], cache: Path, at_least: int, timeout: float = 120
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = _answers_in_cache(cache)
        if n >= at_least:
            return n
        if proc.poll() is not None:
            pytest.fail(f"rung exited early: {proc.stderr.read().decode() if proc.stderr else ''}")
        time.sleep(0.2)
    proc.kill()
    pytest.fail("no answers were cached in time")


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_interrupted_run_resumes_without_losing_or_repeating(
    tmp_path: Path, fpb_path: Path, how: str
) -> None:
    # Without calibration: its training-example answers would be cached before the test's.
    spec = _spec(
        tmp_path,
        fpb_path,
        "[llamacpp:smollm2-135m-instruct]",
        test_size=40,
        calibration="{method: none}",
    )
    out = tmp_path / "run"
    cache = tmp_path / "cache"
    proc = _start(spec, out, cache)
    _wait_for_answers(proc, cache, at_least=8)
    if how == "kill -9":
        proc.kill()
        proc.wait(timeout=30)
    else:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert b"run the same command again to resume" in err
    assert not out.exists(), "an interrupted run must not leave a run folder"
    done_before = _answers_in_cache(cache)
    assert 8 <= done_before < 40

    proc = _start(spec, out, cache)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err.decode()
    preds = _lines(out / "predictions.jsonl")
    assert len(preds) == 40
    assert len({p["id"] for p in preds}) == 40
    assert sum(1 for p in preds if p["cached"]) == done_before
    assert _answers_in_cache(cache) == 40
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert results["rungs"][0]["cached"] == done_before
