"""A rung whose process dies by a signal: the probe names it, compare goes on without it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from rung.compare.probe import probe_rung, train_subset
from rung.errors import ModelCrashError
from rung.models.base import ClassifyRequest

LABELS = ("negative", "neutral", "positive")


def _request() -> ClassifyRequest:
    return ClassifyRequest(text="Profit rose.", labels=LABELS, messages=())


@pytest.mark.usefixtures("segfault_plugin")
@pytest.mark.parametrize(("name", "stage"), [("on-load", "load"), ("on-answer", "answer")])
def test_a_crash_is_named_with_its_signal_and_stage(name: str, stage: str) -> None:
    with pytest.raises(ModelCrashError) as caught:
        probe_rung(f"segfault:{name}", {}, [_request()])
    e = caught.value
    assert (e.signal, e.stage, e.model_id) == ("SIGSEGV", stage, f"segfault:{name}")
    message = str(e)
    assert "\n" not in message
    assert message.startswith(f"segfault:{name} crashed while ")
    assert "SIGSEGV" in message and "remove it from the spec" in message
    assert ", at ctypes/__init__.py:" in message  # the innermost frame faulthandler printed


@pytest.mark.usefixtures("segfault_plugin")
def test_a_rung_that_survives_passes() -> None:
    assert probe_rung("segfault:never", {}, [_request()]).memory is None


def test_train_subset_keeps_a_few_of_each_label() -> None:
    texts = [f"t{i}" for i in range(30)]
    labels = [LABELS[i % 3] for i in range(30)]
    subset = train_subset(texts, labels, LABELS, per_label=2)
    assert subset["labels"] == ["negative", "neutral", "positive"] * 2
    assert subset["label_set"] == list(LABELS)


@pytest.mark.slow
def test_compare_reports_the_crashed_rung_and_runs_the_others(
    segfault_plugin: Path, tmp_path: Path, fpb_path: Path
) -> None:
    del segfault_plugin  # installed: the compare subprocess finds it on PYTHONPATH
    """`rung compare` on a ladder of a rung that segfaults while answering and the bundled
    SmolLM2: one line names the crashed rung and the signal, SmolLM2 is measured, and the run
    folder records the failure."""
    spec = {
        "task": {
            "type": "classify",
            "data": {"path": str(fpb_path)},
            "labels": list(LABELS),
            "train_size": 30,
            "test_size": 6,
            "seed": 0,
        },
        "models": [
            "segfault:on-answer",
            {"id": "llamacpp:smollm2-135m-instruct", "options": {"n_threads": 1}},
        ],
    }
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec), encoding="utf-8")
    out = tmp_path / "run"
    command = ["compare", str(spec_path), "--out", str(out), "--quick"]
    done = subprocess.run(
        [sys.executable, "-m", "rung.cli.main", *command],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    crash_lines = [
        line for line in done.stderr.splitlines() if "segfault:on-answer crashed" in line
    ]
    assert crash_lines and "SIGSEGV" in crash_lines[0], done.stderr
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert [r["model"] for r in results["rungs"]] == ["llamacpp:smollm2-135m-instruct"]
    assert results["rungs"][0]["n"] == 6
    (failed,) = results["failed"]
    assert failed["model"] == "segfault:on-answer"
    assert (failed["signal"], failed["stage"]) == ("SIGSEGV", "answer")
    assert "Not measured" in (out / "report.md").read_text(encoding="utf-8")
    rows = (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 6 and all("segfault" not in json.loads(r)["model"] for r in rows)
