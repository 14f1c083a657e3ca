"""Generative tasks end to end with real bundled models on tiny slices: `rung compare` on an
extract spec (the CLI's dispatch by task type), the run folder, the response cache on a second
run, and a chat task graded by an LLM judge whose verdicts are cached too."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from typer.testing import CliRunner

from rung.cli.main import app
from rung.compare.tasks import load_task_spec, run_task
from rung.runs.quality import TextQuality
from rung.runs.record import PredictionRow, RunResults
from tests.fixture_data import fr_en_data

runner = CliRunner()


def test_compare_extract_with_smollm2(shared_data: Path, tmp_path: Path) -> None:
    conll = shared_data / "conll2003"
    spec = tmp_path / "ner.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "name": "ner",
                "task": {
                    "type": "extract",
                    "data": {"path": str(conll / "eng.train")},
                    "test_data": {"path": str(conll / "eng.testa")},
                    "splits": {"test_size": 2, "train_size": 10},
                    "prompt": {
                        "instructions": "Entities ({types}) as a JSON array of text and type.",
                        "max_tokens": 24,
                    },
                },
                "models": ["llamacpp:smollm2-135m-instruct"],
                "measure": {
                    "bootstrap": 100,
                    # two requests end each level; the time cap only guards a stalled one (a busy CI
                    # machine may take more than 10 s for them)
                    "load": {"concurrency": [1, 2], "requests": 2, "max_seconds": 120},
                },
            }
        )
    )
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 0, result.output
    results = RunResults.model_validate_json((out / "results.json").read_text())
    (rung,) = results.rungs
    assert results.task.type == "extract" and rung.n == 2 and rung.cached == 0
    assert isinstance(rung.quality, TextQuality)
    assert (
        set(rung.quality.scores) == {"precision", "recall", "f1"} and rung.quality.primary == "f1"
    )
    assert rung.tokens.out > 0 and rung.latency_ms.p50 > 0
    # measured like a classify rung: a load test on the task's requests, memory, cost
    assert rung.load is not None and [lv.concurrency for lv in rung.load] == [1, 2]
    assert rung.load[0].requests > 0 and rung.load[0].ttft_ms is not None
    assert rung.memory_mb.peak_rss is not None and rung.memory_mb.peak_rss > 0
    assert rung.cost_usd_per_1k is not None and rung.params is not None
    assert results.task.items_sha256
    html = (out / "report.html").read_text()
    assert "f1 [95% CI]" in html and 'id="load"' in html
    # the default advice, on the task's primary metric, as a classify report has it
    assert 'id="advice"' in html and "Recommended: <b>" in html
    rows = [PredictionRow.model_validate_json(line) for line in (out / "predictions.jsonl").open()]
    assert len(rows) == 2 and all(r.generated is not None and r.item_metrics for r in rows)
    assert "| llamacpp:smollm2-135m-instruct |" in (out / "report.md").read_text()

    again = runner.invoke(app, ["compare", str(spec), "--out", str(tmp_path / "again")])
    assert again.exit_code == 0, again.output
    cached = json.loads((tmp_path / "again" / "results.json").read_text())
    assert cached["rungs"][0]["cached"] == 2
    assert (
        cached["rungs"][0]["quality"]
        == json.loads((out / "results.json").read_text())["rungs"][0]["quality"]
    )


def test_chat_graded_by_a_judge_through_the_cache(tmp_path: Path) -> None:
    spec = load_task_spec(
        {
            "task": {
                "type": "chat",
                "data": fr_en_data(),
                "splits": {"test_size": 2},
                "prompt": {"instructions": "Translate into English.", "max_tokens": 16},
                "judge": {"model": "llamacpp:smollm2-135m-instruct"},
            },
            "models": ["llamacpp:gemma-3-270m"],
            "measure": {"bootstrap": 100, "load": None, "memory": False},
        }
    )
    first = run_task(spec, tmp_path)
    (rung,) = first.results.rungs
    assert isinstance(rung.quality, TextQuality)
    assert {"rougeL", "token_f1", "judge"} <= set(rung.quality.scores)
    assert rung.quality.judge == "llamacpp:smollm2-135m-instruct"
    second = run_task(spec, tmp_path)
    assert second.results.rungs[0].cached == 2
    assert second.results.rungs[0].quality == rung.quality
