"""``rung tune-extract``: an encoder with a token-classification head, trained and scored on an
extract spec's splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
import yaml

from rung.cli.common import console, user_errors
from rung.errors import SpecError

__all__ = ["register"]


def tune_extract_cmd(
    spec: Annotated[Path, typer.Argument(help="A spec whose task: is of type extract.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the tuned tagger.")],
    encoder: Annotated[str, typer.Option(help="Encoder to tune.")] = "minilm-l6",
    epochs: Annotated[int, typer.Option(min=1, max=50)] = 3,
    learning_rate: Annotated[float, typer.Option(min=1e-7, max=1.0)] = 1e-4,
) -> None:
    """Fine-tune an encoder to tag the entities of SPEC's task; print its entity F1."""
    from rung.tasks.extract import ExtractTask
    from rung.tasks.registry import parse_task
    from rung.tune.encoder.tokens import tune_extract

    if not spec.is_file():
        raise SpecError(f"spec file not found: {spec}")
    data = yaml.safe_load(spec.read_text(encoding="utf-8"))
    task = parse_task(data.get("task") if isinstance(data, dict) else None, str(spec))
    if not isinstance(task, ExtractTask):
        raise SpecError(f"{spec}: tune-extract needs a task of type extract")
    run = tune_extract(
        task, spec.resolve().parent, encoder, epochs=epochs, learning_rate=learning_rate
    )
    run.tagger.save(out)
    scores = {k: {"value": v.value, "ci95": list(v.ci95)} for k, v in run.metrics.items()}
    (out / "scores.json").write_text(
        json.dumps({"n_train": run.n_train, "n_test": run.n_test, "quality": scores}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    for name, m in run.metrics.items():
        console.print(f"{name}: {m.value:.3f} [{m.ci95[0]:.3f}, {m.ci95[1]:.3f}]")
    console.print(f"Tagger: [bold]{out}[/] ({run.n_train} training, {run.n_test} test sentences)")


def register(app: typer.Typer) -> None:
    app.command("tune-extract")(user_errors(tune_extract_cmd))
