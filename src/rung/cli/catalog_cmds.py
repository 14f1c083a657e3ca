"""Commands about models themselves: what is available here."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from rung.cli.common import console, user_errors
from rung.cli.display import models_table

__all__ = ["register"]


def models(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The model ids available here and where each comes from."""
    from rung.models.registry import bundled_models, providers

    found = bundled_models()
    if as_json:
        rows = [m.__dict__ for m in found]
        console.print_json(json.dumps({"providers": providers(), "models": rows}))
        return
    console.print(models_table(found))
    console.print(
        "Any GGUF file works as llamacpp:<path.gguf>; any sentence-transformers folder or hub id as "
        "encoder:<id>; any Hugging Face causal LM as transformers:<folder, hub id or .gguf>; "
        "any OpenAI-compatible API as openai:<model> (base URL from RUNG_OPENAI_BASE_URL)."
    )


def register(app: typer.Typer) -> None:
    app.command("models")(user_errors(models))
