"""`rung models`, `rung fit` and `rung advise` through the real command (Typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import pytest
import yaml
from typer.testing import CliRunner

from rung.cli.main import app
from rung.runs import RungResult
from rung.runs.spec import load_spec
from tests.runs.records import run_results, rung_result

runner = CliRunner()


def _ok(args: list[str], env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200", **(env or {})})
    assert result.exit_code == 0, result.output + result.stderr
    return result.stdout


def _fails(args: list[str], expected: str) -> str:
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:"), message
    assert expected in message, message
    return message


def _rung(label: str, model: str, acc: float, ci: tuple[float, float], **kw: Any) -> RungResult:
    p95 = kw.get("p95", 50)
    return rung_result(
        label,
        acc,
        ci,
        model=model,
        n=150,
        macro_f1=(acc - 0.03, ci[0] - 0.03, ci[1] - 0.03),
        p95=p95,
        throughput=kw.get("thr", 10.0),
        params=kw.get("params"),
        tokens_in=kw.get("tin", 90.0),
        tokens_out=2.0,
    )


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    """A run folder as `rung compare` writes it, with figures typed in for the test."""
    out = tmp_path / "run"
    out.mkdir()
    results = run_results(
        [
            _rung("minilm", "encoder:minilm-l6", 0.80, (0.74, 0.86), p95=6, thr=150, params=22_713_216),
            _rung("smollm2", "llamacpp:smollm2-135m-instruct", 0.62, (0.55, 0.70), p95=90, thr=11, params=134_515_008),
            _rung("gpt-4o-mini", "openai:gpt-4o-mini", 0.93, (0.89, 0.97), p95=700, thr=9),
            _rung("ollama", "openai:qwen2.5:7b", 0.90, (0.85, 0.95), p95=900, thr=3),
        ],
        name="test run",
    )  # fmt: skip
    (out / "results.json").write_text(results.to_text())
    spec = {
        "task": {"type": "classify", "data": {"path": "/data.csv"}},
        "models": [
            {"id": "encoder:minilm-l6", "label": "minilm"},
            {"id": "llamacpp:smollm2-135m-instruct", "label": "smollm2"},
            {"id": "openai:gpt-4o-mini", "label": "gpt-4o-mini"},
            {
                "id": "openai:qwen2.5:7b",
                "label": "ollama",
                "options": {"base_url": "http://localhost:11434/v1"},
            },
        ],
    }
    (out / "spec.yaml").write_text(yaml.safe_dump(spec))
    return out


def test_models_shows_cards() -> None:
    out = _ok(["models"])
    for text in (
        "encoder:minilm-l6",
        "llamacpp:smollm2-135m-instruct",
        "llamacpp:gemma-3-270m",
        "Q4_1",
        "8,192",
        "apache-2.0",
        "openai:gpt-4o-mini",
        "not measured here",
    ):
        assert text in out, text


def test_models_json_and_fits() -> None:
    doc = json.loads(_ok(["models", "--json", "--fits", "phone", "--context", "2048"]))
    ids = {m["model_id"] for m in doc["models"]}
    assert {"encoder:minilm-l6", "llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"} <= ids
    assert not any(i.startswith("openai:") for i in ids)
    assert "transformers:Qwen/Qwen2.5-7B-Instruct" not in ids
    smol = next(m for m in doc["models"] if m["model_id"] == "llamacpp:smollm2-135m-instruct")
    assert smol["params"] == 134_515_008 and smol["memory"]["context"] == 2048
    assert doc["providers"]
    every = json.loads(_ok(["models", "--json"]))
    gpt = next(m for m in every["models"] if m["model_id"] == "openai:gpt-4o-mini")
    assert gpt["price"]["source"].startswith("genai-prices") and gpt["on_prem"] is False


def test_models_bad_device_and_catalog(tmp_path: Path) -> None:
    _fails(["models", "--fits", "phnoe"], "did you mean 'phone'")
    bad = tmp_path / "c.yaml"
    bad.write_text("models:\n  - id: llamacpp:x\n    licence: mit\n")
    _fails(["models", "--catalog", str(bad)], "unknown field 'models.0.licence'")


def test_models_with_a_catalog_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("models:\n  - id: llamacpp:smollm2-135m-instruct\n    license: ours-v1\n")
    doc = json.loads(_ok(["models", "--json"], env={"RUNG_CATALOG": str(path)}))
    smol = next(m for m in doc["models"] if m["model_id"] == "llamacpp:smollm2-135m-instruct")
    assert smol["license"] == "ours-v1"


def test_fit_bundled_model_on_a_phone() -> None:
    out = _ok(["fit", "llamacpp:smollm2-135m-instruct", "--device", "phone", "--context", "4096"])
    assert "Fits, with" in out and "to spare" in out
    assert "30 layers × 3 KV heads × 64 dims" in out


def test_fit_suggests_a_quantization_when_it_does_not_fit() -> None:
    model = "transformers:Qwen/Qwen2.5-1.5B-Instruct"
    out = _ok(["fit", model, "--device", "phone"])
    assert "Does not fit" in out
    assert "Q8_0 is the largest quantization that would fit" in out
    doc = json.loads(_ok(["fit", model, "--device", "phone", "--json"]))
    assert doc["fits"] is False and doc["spare_bytes"] < 0
    assert doc["suggested_quantization"] == "Q8_0"
    assert [q["name"] for q in doc["quantizations"]][:2] == ["Q8_0", "Q6_K"]


def test_fit_unknown_metadata_says_so(tmp_path: Path) -> None:
    path = tmp_path / "bare.gguf"
    writer = gguf.GGUFWriter(path, "llama")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    out = _ok(["fit", f"llamacpp:{path}", "--device", "phone"])
    assert "KV cache     unknown" in out and "Cannot tell whether it fits" in out
    doc = json.loads(_ok(["fit", f"llamacpp:{path}", "--json"]))
    assert doc["fits"] is None and doc["card"]["params"] is None


def test_fit_bad_input() -> None:
    _fails(["fit", "llamacpp:smollm2"], "did you mean 'llamacpp:smollm2-135m-instruct'")
    _fails(["fit", "llamacpp:smollm2-135m-instruct", "--device", "toaster"], "unknown device")


def test_advise_a_run(run_dir: Path) -> None:
    out = _ok(["advise", str(run_dir), "--min-accuracy", "78", "--device", "phone"])
    assert "Recommended: minilm" in out
    assert "Runners-up" in out and "What would change the choice" in out
    doc = json.loads(_ok(["advise", str(run_dir), "--min-accuracy", "0.9", "--on-prem", "--json"]))
    assert doc["recommended"] == {"label": "ollama", "model": "openai:qwen2.5:7b"}
    gpt = next(r for r in doc["runners_up"] if r["label"] == "gpt-4o-mini")
    assert gpt["fails"][0]["constraint"] == "on_prem"
    assert doc["constraints"]["min_accuracy"] == 0.9
    rows = {r["label"]: r for r in doc["rungs"]}
    assert (
        rows["gpt-4o-mini"]["cost_per_1k"] > 0
        and "genai-prices" in rows["gpt-4o-mini"]["cost_basis"]
    )
    assert rows["ollama"]["on_prem"] is True


def test_advise_bad_input(tmp_path: Path, run_dir: Path) -> None:
    _fails(["advise", str(tmp_path)], "holds no results.json")
    _fails(["advise"], "give a RUN_DIR")
    _fails(["advise", str(run_dir), "--device", "phnoe"], "did you mean 'phone'")
    _fails(["advise", str(run_dir), "--min-accuracy", "150"], "fraction (0.85) or a percentage")
    (tmp_path / "results.json").write_text("{not json")
    _fails(["advise", str(tmp_path)], "not valid JSON")


def test_advise_before_measuring(tmp_path: Path) -> None:
    spec_path = tmp_path / "advise-spec.yaml"
    out = _ok(["advise", "--task", "classify", "--device", "phone", "--write-spec", str(spec_path)])
    assert "UNMEASURED" in out and "task.data.path" in out
    spec = load_spec(spec_path)
    assert "llamacpp:smollm2-135m-instruct" in [m.id for m in spec.models]
    doc = json.loads(
        _ok(
            [
                "advise",
                "--task",
                "classify",
                "--device",
                "phone",
                "--write-spec",
                str(spec_path),
                "--json",
            ]
        )
    )
    assert doc["measured"] is False and doc["spec_path"] == str(spec_path)
    _fails(["advise", "--task", "transalte"], "unknown task 'transalte'")


def test_advise_before_measuring_a_text_task(tmp_path: Path) -> None:
    from rung.app.compare import load_any_spec
    from rung.compare.tasks import TaskSpec

    spec_path = tmp_path / "answer-spec.yaml"
    doc = json.loads(_ok(["advise", "--task", "answer", "--write-spec", str(spec_path), "--json"]))
    # a task whose rungs write text: the encoders are left out, with the reason
    candidates = [c["model_id"] for c in doc["candidates"]]
    assert "llamacpp:smollm2-135m-instruct" in candidates
    assert not any(c.startswith("encoder:") for c in candidates)
    assert any(
        e["model_id"].startswith("encoder:") and "does not write text" in e["why"]
        for e in doc["excluded"]
    )
    text = spec_path.read_text(encoding="utf-8")
    assert "EDIT every EDIT-ME" in text and "rung schema answer" in text
    spec = load_any_spec(spec_path)  # as rung compare reads it, placeholders and all
    assert isinstance(spec, TaskSpec) and spec.task["type"] == "answer"
    assert spec.task["documents"] == ["EDIT-ME-path-to-your-documents/"]


def test_models_and_fit_say_what_extra_buffers_auto_does_on_this_cpu() -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "cpuinfo"
    amx = {"RUNG_CPUINFO": str(fixtures / "xeon-sapphire-rapids.txt")}
    plain = {"RUNG_CPUINFO": str(fixtures / "epyc-no-amx.txt")}
    assert "this CPU reports AMX" in " ".join(_ok(["models"], amx).split())
    assert "repacking on" in " ".join(_ok(["models"], plain).split())
    fitted = " ".join(_ok(["fit", "llamacpp:smollm2-135m-instruct"], amx).split())
    assert "repacking off (extra_buffers: auto)" in fitted
    assert "AMX" not in _ok(["fit", "encoder:minilm-l6"], amx)


def test_advise_a_text_run(tmp_path: Path) -> None:
    from tests.advise.test_advice import text_run

    out = tmp_path / "run"
    out.mkdir()
    results = text_run({"small": (0.30, 0.27, 0.33), "big": (0.42, 0.39, 0.45)})
    (out / "results.json").write_text(results.to_text())
    doc = json.loads(_ok(["advise", str(out), "--json"]))
    assert doc["metric"] == "rougeL" and doc["recommended"]["label"] == "big"
    low = json.loads(_ok(["advise", str(out), "--min-quality", "rougeL=0.25", "--json"]))
    assert low["recommended"]["label"] == "small"
    assert low["constraints"]["min_quality"] == {"rougeL": 0.25}
    # a bare VALUE is the primary metric's floor; 35% is 0.35
    bare = json.loads(_ok(["advise", str(out), "--min-quality", "35%", "--json"]))
    assert bare["recommended"]["label"] == "big"
    assert bare["constraints"]["min_quality"] == {"rougeL": 0.35}
    text = _ok(["advise", str(out), "--min-quality", "rougeL=25"])
    assert "Recommended: small" in text and "rougeL [95% CI]" in text
    _fails(["advise", str(out), "--min-quality", "bleu=0.2"], "did not measure 'bleu'")
    _fails(["advise", str(out), "--min-quality", "rougeL=lots"], "must be a number")
