"""``rung tune-lm`` and ``rung export gguf`` through Typer's runner: bad input ends in one line,
exit status 2 and no folder; a short real run writes a folder and a GGUF that are rungs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.models.bundled import minilm_l6_dir

runner = CliRunner()


@pytest.fixture
def dialogsum(shared_data: Path, tmp_path: Path) -> Path:
    """Six short DialogSum pairs, as a user's own JSONL file."""
    rows = (shared_data / "dialogsum" / "dialogsum.dev.jsonl").read_text().splitlines()
    picked = sorted((json.loads(r) for r in rows), key=lambda r: (len(r["dialogue"]), r["fname"]))
    path = tmp_path / "dialogues.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in picked[:6]), encoding="utf-8")
    return path


def _fails(tmp_path: Path, args: list[str], expected: str, out: Path | None = None) -> str:
    out = out or tmp_path / "model"
    before = sorted(p.name for p in tmp_path.iterdir())
    result = runner.invoke(app, [*args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:") or "Error" in message, message
    assert expected in message, message
    assert len(message.splitlines()) <= 3 or "Error" in message, message
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, no partial
    return message


def test_bad_inputs_exit_2_and_write_nothing(tmp_path: Path, dialogsum: Path) -> None:
    io = ["--input", "dialogue", "--output", "summary"]
    data = str(dialogsum)
    _fails(tmp_path, ["tune-lm", data, "--input", "dialog", "--output", "summary"], "'dialog'")
    _fails(tmp_path, ["tune-lm", data, "--input", "dialogue"], "no field 'completion'")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    _fails(tmp_path, ["tune-lm", str(empty), *io], "holds no training pairs")
    _fails(tmp_path, ["tune-lm", str(tmp_path / "absent.jsonl"), *io], "no data file")
    _fails(tmp_path, ["tune-lm", data, *io, "--format", "xml"], "--format")
    _fails(
        tmp_path,
        ["tune-lm", data, *io, "--base", "transformers:smollm2-135m-instruc"],
        "did you mean 'smollm2-135m-instruct'",
    )
    _fails(
        tmp_path,
        ["tune-lm", data, *io, "--base", f"transformers:{tmp_path / 'absent.gguf'}"],
        "no GGUF file",
    )
    _fails(
        tmp_path,
        ["tune-lm", data, *io, "--base", f"transformers:{minilm_l6_dir()}"],
        "not a causal language model",
    )
    _fails(tmp_path, ["tune-lm", data, *io, "--target-modules", " , "], "at least one module")
    _fails(tmp_path, ["tune-lm", data, *io, "--gguf", "--gguf-type", "q2"], "--gguf-type")
    existing = tmp_path / "existing"
    existing.mkdir()
    (existing / "rung.json").write_text("{}")
    _fails(tmp_path, ["tune-lm", data, *io], "already holds a model", out=existing)
    assert sorted(p.name for p in existing.iterdir()) == ["rung.json"]


def test_export_gguf_bad_inputs(tmp_path: Path) -> None:
    result = runner.invoke(app, ["export", "gguf", str(tmp_path)])
    assert result.exit_code == 2
    assert "adapter_config.json" in result.stderr
    result = runner.invoke(app, ["export", "gguf", str(tmp_path), "--type", "q4"])
    assert result.exit_code == 2
    assert "--type" in result.stderr


@pytest.mark.slow
def test_short_run_writes_a_folder_and_a_gguf(tmp_path: Path, dialogsum: Path) -> None:
    out = tmp_path / "summarizer"
    args = [
        "tune-lm",
        str(dialogsum),
        "--out",
        str(out),
        "--input",
        "dialogue",
        "--output",
        "summary",
        "--system",
        "Summarize the dialogue.",
        "--val-size",
        "2",
        "--max-steps",
        "2",
        "--max-length",
        "112",
        "--lr",
        "2e-3",
        "--gguf",
        "--merge",
        "--threads",
        "1",  # two threads on a busy 2-core machine spin-wait on each other
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert f"transformers:{out}" in result.stdout
    assert f"llamacpp:{out / 'model-f16.gguf'}" in result.stdout
    assert "loss, training examples" in result.stdout
    card = json.loads((out / "rung.json").read_text())
    assert card["data"]["n_train"] == 4 and card["data"]["n_validation"] == 2
    assert card["data"]["path"] == str(dialogsum)
    assert card["data"]["input"] == "dialogue" and card["data"]["sha256"]
    assert card["steps"] == 2
    assert card["files"]["gguf"] == "model-f16.gguf"
    assert card["train_loss_after"] < card["train_loss_before"]
    assert (out / "model-f16.gguf").stat().st_size > 200_000_000

    assert (out / "merged" / "model.safetensors").is_file()
    _merged_matches_the_gguf(out, "Summarize the dialogue.")

    again = runner.invoke(app, ["export", "gguf", str(out)])
    assert again.exit_code == 2 and "--force" in again.stderr
    copy = tmp_path / "copy.gguf"
    exported = runner.invoke(app, ["export", "gguf", str(out), "--out", str(copy)])
    assert exported.exit_code == 0, exported.output
    assert copy.read_bytes() == (out / "model-f16.gguf").read_bytes()  # the export is exact
    assert f"llamacpp:{copy}" in exported.stdout
    replaced = runner.invoke(app, ["tune-lm", *args[1:], "--max-steps", "1"])
    assert replaced.exit_code == 2 and "already holds a model" in replaced.stderr


def _merged_matches_the_gguf(out: Path, system: str) -> None:
    """transformers:<folder> (here from merged/) and llamacpp:<folder>/model-f16.gguf read the
    same trained model: the same next-token logits, within f16 rounding."""
    import numpy as np
    import torch

    from rung.models import registry
    from rung.models.base import ChatMessage
    from rung.models.llamacpp import open_llama
    from rung.models.transformers import TransformersModel

    model = registry.create(f"transformers:{out}", {"threads": 1})
    assert isinstance(model, TransformersModel)
    model.load()
    try:
        assert model.info().extra["merged"] == str(out / "merged")
        messages = (ChatMessage("system", system), ChatMessage("user", "#Person1#: Hi!"))
        ids = model._render(messages).ids
        hf, _ = model.pretrained()
        with torch.inference_mode():
            expected = hf(input_ids=torch.tensor([ids])).logits[0, -1].float().numpy()
    finally:
        model.close()
    llm = open_llama(
        out / "model-f16.gguf",
        n_threads=1,
        n_ctx=128,
        logits_all=True,
        verbose=False,
    )
    llm.eval(ids)
    got = np.array(llm.scores[llm.n_tokens - 1])
    assert int(got.argmax()) == int(expected.argmax())
    assert float(np.abs(got - expected).max()) < 0.25
