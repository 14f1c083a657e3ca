"""``rung export``: a tuned model in a form that runs elsewhere: ONNX for the edge, GGUF for
llama.cpp."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rung.cli.common import console, user_errors
from rung.cli.tune_lm_cmds import export_gguf_cmd

__all__ = ["register"]


def onnx_cmd(
    source: Annotated[
        Path, typer.Argument(help="A classifier folder written by `rung tune` (full or setfit).")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", "-o", help="Folder to write the ONNX rung into.", show_default=False),
    ],
    no_quantize: Annotated[
        bool, typer.Option("--no-quantize", help="Write the fp32 graph only (no int8 copy).")
    ] = False,
    opset: Annotated[
        int | None,
        typer.Option("--opset", help="ONNX opset, 14-20 (default: 17).", show_default=False),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a model already in --out (once the new is done)."),
    ] = False,
) -> None:
    """Export a tuned encoder classifier to ONNX, int8-quantized, as its own rung (onnx:OUT)."""
    from rung import fmt
    from rung.export.onnx import export_onnx

    with console.status(f"exporting {source} to ONNX and checking it against PyTorch"):
        result = export_onnx(
            source, out, quantize="none" if no_quantize else "int8", opset=opset, force=force
        )
    console.print(
        f"Exported {source} to [bold]{out}[/] in {result.seconds:.0f} s; against PyTorch on "
        f"{result.check_texts} texts:",
        highlight=False,
    )
    for graph in result.graphs:
        default = "  (the default)" if graph.file == result.default_file else ""
        console.print(
            f"  {graph.file:16} {graph.precision}  {fmt.bytes_(graph.bytes, '?'):>9}  largest logit "
            f"difference {graph.max_abs_logit_difference:.2g}, same label on "
            f"{round(graph.label_agreement * result.check_texts)}/{result.check_texts}{default}",
            highlight=False,
        )
    console.print(
        f"Use it as a rung: [bold]onnx:{out}[/]  (option file: model.onnx runs the fp32 graph); "
        "`rung compare` measures its speed and any accuracy lost",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    export_app = typer.Typer(
        name="export",
        help="Export a tuned model to run elsewhere (ONNX for the edge, GGUF for llama.cpp).",
        no_args_is_help=True,
    )
    export_app.command("onnx")(user_errors(onnx_cmd))
    export_app.command("gguf")(user_errors(export_gguf_cmd))
    app.add_typer(export_app, name="export")
