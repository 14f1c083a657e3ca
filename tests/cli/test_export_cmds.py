"""rung export onnx from the command line: what it prints, and clear refusals (exit 2) that
leave nothing half-written."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from rung.cli.main import app
from rung.models.bundled import minilm_l6_dir

runner = CliRunner()


def _flat(output: str) -> str:
    return " ".join(output.split())  # Rich may fold a long line


def test_export_onnx_prints_sizes_checks_and_the_rung_id(
    tuned_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "onnx"
    result = runner.invoke(app, ["export", "onnx", str(tuned_classifier), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = _flat(result.output)
    assert f"Use it as a rung: onnx:{out}" in text
    assert "model.onnx fp32" in text and "model_int8.onnx int8" in text
    assert "MB" in text and "largest logit difference" in text and "(the default)" in text
    assert (out / "model_int8.onnx").is_file()

    # an existing model is kept unless --force
    result = runner.invoke(
        app, ["export", "onnx", str(tuned_classifier), "--out", str(out), "--no-quantize"]
    )
    assert result.exit_code == 2 and "--force" in _flat(result.output)
    assert (out / "model_int8.onnx").is_file()

    result = runner.invoke(
        app,
        ["export", "onnx", str(tuned_classifier), "--out", str(out), "--no-quantize", "--force"],
    )
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").is_file() and not (out / "model_int8.onnx").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx"]


def test_bad_input_exits_2_with_one_message_and_writes_nothing(
    tuned_classifier: Path, tmp_path: Path
) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a model", encoding="utf-8")
    cases = [
        # a sentence encoder without a classifier head
        ([str(minilm_l6_dir()), "--out", str(tmp_path / "a")], "no classifier head"),
        ([str(tmp_path / "nope"), "--out", str(tmp_path / "b")], "not found"),
        ([str(a_file), "--out", str(tmp_path / "c")], "is a file"),
        ([str(tuned_classifier), "--out", str(a_file)], "is a file"),
        ([str(tuned_classifier), "--out", str(tmp_path / "d"), "--opset", "9"], "opset 9"),
    ]
    for args, words in cases:
        result = runner.invoke(app, ["export", "onnx", *args])
        text = _flat(result.output)
        assert result.exit_code == 2, (args, result.output)
        assert text.startswith("error:") and text.count("error:") == 1, text
        assert words in text, text
        assert "Traceback" not in result.output
    assert "rung tune" in _flat(
        runner.invoke(
            app, ["export", "onnx", str(minilm_l6_dir()), "--out", str(tmp_path / "e")]
        ).output
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
