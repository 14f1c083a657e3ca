"""Every kind of bad input ends in one line that says what to fix, exit status 2, and no run
folder. These go through the real command (Typer's runner, in process)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.models.bundled import smollm2_135m_gguf

runner = CliRunner()


def _csv(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "reviews.csv"
    lines = ["text,label"] + [f'"{t}",{lab}' for t, lab in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


ROWS = [(f"great product number {i}", "positive") for i in range(10)] + [
    (f"awful product number {i}", "negative") for i in range(10)
]


def _spec(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def _base(
    models: str = "[encoder:minilm-l6]",
    data: str = "{path: reviews.csv}",
    labels: str = "[negative, positive]",
) -> str:
    return f"task:\n  type: classify\n  data: {data}\n  labels: {labels}\n  test_size: 4\nmodels: {models}\n"


def _run_fails(tmp_path: Path, spec: Path, expected: str) -> str:
    out = tmp_path / "run"
    result = runner.invoke(app, ["compare", str(spec), "--out", str(out)])
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:"), message
    assert expected in message, message
    assert len(message.splitlines()) <= 3, message  # one line (Rich may wrap a long one)
    assert not out.exists()
    assert not list(tmp_path.glob(".run.*"))
    return message


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_missing_data_file(tmp_path: Path) -> None:
    _run_fails(tmp_path, _spec(tmp_path, _base()), "data file not found")


def test_missing_column(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    spec = _spec(tmp_path, _base(data="{path: reviews.csv, text: review}"))
    _run_fails(tmp_path, spec, "no text column 'review'")


def test_empty_dataset(tmp_path: Path) -> None:
    _csv(tmp_path, [])
    _run_fails(tmp_path, _spec(tmp_path, _base()), "holds no examples")


def test_labels_not_listed(tmp_path: Path) -> None:
    _csv(tmp_path, [*ROWS, ("meh", "neutral")])
    _run_fails(tmp_path, _spec(tmp_path, _base()), "labels the spec does not list: 'neutral'")


def test_unknown_model_id_suggests(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    spec = _spec(tmp_path, _base(models="[llamacpp:smollm2-135m]"))
    _run_fails(tmp_path, spec, "did you mean 'smollm2-135m-instruct'")


def test_unknown_provider_suggests(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    spec = _spec(tmp_path, _base(models="[llamacp:smollm2-135m-instruct]"))
    _run_fails(tmp_path, spec, "did you mean 'llamacpp'")


def test_corrupt_gguf(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    (tmp_path / "bad.gguf").write_bytes(b"this is not a model at all" * 100)
    spec = _spec(tmp_path, _base(models=f"[llamacpp:{tmp_path / 'bad.gguf'}]"))
    _run_fails(tmp_path, spec, "bad.gguf")


def test_truncated_gguf(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    source = smollm2_135m_gguf()
    truncated = tmp_path / "half.gguf"
    with source.open("rb") as f:
        truncated.write_bytes(f.read(source.stat().st_size // 2))
    spec = _spec(tmp_path, _base(models=f"[llamacpp:{truncated}]"))
    message = _run_fails(tmp_path, spec, "half.gguf")
    assert "truncated" in message or "incomplete" in message


def test_unreachable_endpoint(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    url = f"http://127.0.0.1:{_free_port()}/v1"
    spec = _spec(
        tmp_path, _base(models=f'[{{id: "openai:some-model", options: {{base_url: "{url}"}}}}]')
    )
    _run_fails(tmp_path, spec, url)


def test_missing_api_key(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    _run_fails(tmp_path, _spec(tmp_path, _base(models="[openai:gpt-4o-mini]")), "OPENAI_API_KEY")


def test_malformed_yaml(tmp_path: Path) -> None:
    _run_fails(tmp_path, _spec(tmp_path, "task: [unclosed\nmodels: x\n"), "malformed YAML at line")


def test_unknown_spec_field(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    _run_fails(
        tmp_path, _spec(tmp_path, _base() + "temperature: 0\n"), "unknown field 'temperature'"
    )


def test_missing_spec_file(tmp_path: Path) -> None:
    _run_fails(tmp_path, tmp_path / "nope.yaml", "spec file not found")


def test_out_folder_that_is_not_a_run(tmp_path: Path) -> None:
    _csv(tmp_path, ROWS)
    out = tmp_path / "run"
    out.mkdir()
    (out / "precious.txt").write_text("keep me", encoding="utf-8")
    result = runner.invoke(app, ["compare", str(_spec(tmp_path, _base())), "--out", str(out)])
    assert result.exit_code == 2
    assert "not empty and holds no rung run" in result.stderr
    assert (out / "precious.txt").read_text(encoding="utf-8") == "keep me"


@pytest.mark.parametrize("args", [["compare"], ["nonsense-command"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    assert runner.invoke(app, args).exit_code == 2
