"""A classify flow is a rung: ``rung compare`` measures flow:<file> beside the model it wraps,
on a few financial phrasebank sentences."""

from __future__ import annotations

from pathlib import Path

import pytest

from rung.app import compare_spec
from rung.runs import RunFolder
from rung.runs.spec import parse_spec
from tests.flows.conftest import LLAMA_OPTIONS, SMOL, write_flow

LABELS = ["negative", "neutral", "positive"]
INSTRUCTIONS = (
    "Label the sentiment of this financial news sentence. Answer with one word: {labels}."
)


def test_rung_compare_measures_a_flow(
    tmp_path: Path, fpb_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RUNG_CACHE_DIR", str(tmp_path / "cache"))
    flow = write_flow(
        tmp_path,
        f"""
        name: sentiment
        inputs:
          text: string
        steps:
          - id: cleaned
            type: code
            expr: "strip(inputs.text)"
          - id: label
            type: classify
            model: {SMOL}
            options: {LLAMA_OPTIONS}
            text: "{{{{cleaned.output}}}}"
            labels: {LABELS}
            instructions: "{INSTRUCTIONS}"
        """,
        name="sentiment.yaml",
    )
    spec = parse_spec(
        {
            "name": "flow vs model",
            "task": {
                "type": "classify",
                "data": {"path": str(fpb_path)},
                "labels": LABELS,
                "train_size": 30,
                "test_size": 6,
                "seed": 0,
                "prompt": {"instructions": INSTRUCTIONS},
                # the flow's classify step asks the model as it is: so must the plain rung
                "calibration": {"method": "none"},
            },
            "models": [f"flow:{flow}", {"id": SMOL, "options": LLAMA_OPTIONS}],
            "measure": {"load": None, "memory": False},
        }
    )
    result = compare_spec(spec, tmp_path, tmp_path / "run", use_cache=False)
    rungs = {r.model: r for r in result.results.rungs}
    assert set(rungs) == {f"flow:{flow}", SMOL}, result.results.failed
    flow_rung = rungs[f"flow:{flow}"]
    assert flow_rung.quality.metrics()["accuracy"].value is not None
    assert flow_rung.latency_ms.p50 is not None and flow_rung.latency_ms.p50 > 0
    # the same prompt and model behind the flow: the same answers, example by example
    answers: dict[str, dict[str, str | None]] = {}
    for row in RunFolder(tmp_path / "run").predictions():
        answers.setdefault(row.model, {})[row.id] = row.predicted
    assert len(answers[SMOL]) == 6 and answers[f"flow:{flow}"] == answers[SMOL]

    # A flow is checked like any rung: the same spec again passes rung check's gate.
    from rung.app.check import check_spec

    checked = check_spec(spec, tmp_path, tmp_path / "run", tmp_path / "again")
    assert not checked.report.failed
    assert {c.rung for c in checked.report.quality} == {f"flow:{flow}", SMOL}
