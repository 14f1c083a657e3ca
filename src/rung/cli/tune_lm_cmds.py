"""``rung tune-lm``: LoRA fine-tuning of a small causal LM on prompt/completion pairs, into a
folder that is a rung (``transformers:<folder>``) and, with ``--gguf``, a GGUF file for llama.cpp
(``llamacpp:<file>``); ``rung export gguf`` exports a folder trained without ``--gguf``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rung.cli.common import console, err_console, user_errors
from rung.cli.display import LiveDisplay
from rung.errors import ConfigurationError

__all__ = ["export_gguf_cmd", "register", "tune_lm_cmd"]

DEFAULT_BASE = "transformers:smollm2-135m-instruct"  # rung.tune.lm's, without importing it


class LoraDisplay(LiveDisplay):
    """The stages as lines, then a bar of optimizer steps with the last batch loss and the
    last validation loss."""

    def __init__(self, out: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.description}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[losses]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=out,
        )
        self._task: TaskID | None = None
        self._loss: float | None = None
        self._val: float | None = None

    def _losses(self) -> str:
        parts = []
        if self._loss is not None:
            parts.append(f"loss {self._loss:.3f}")
        if self._val is not None:
            parts.append(f"val {self._val:.3f}")
        return " · ".join(parts)

    def phase(self, text: str) -> None:
        self._progress.console.print(f"[dim]{text}…[/]", highlight=False)

    def start(self, total_steps: int) -> None:
        self._task = self._progress.add_task("training", total=total_steps, losses="")

    def step(self, loss: float) -> None:
        self._loss = loss
        if self._task is not None:
            self._progress.update(self._task, advance=1, losses=self._losses())

    def evaluated(self, epoch: float, val_loss: float) -> None:
        self._val = val_loss
        if self._task is not None:
            self._progress.update(self._task, losses=self._losses())

    def done(self) -> None:
        if self._task is not None:
            self._progress.stop_task(self._task)


def _loss_pair(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "-"
    return f"{before:.3f} → [bold]{after:.3f}[/]"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n < 1e9 else f"{n / 1e9:.2f} GB"


def tune_lm_cmd(
    data: Annotated[
        Path,
        typer.Argument(help="Training pairs: JSONL, CSV or TSV with a prompt and a completion."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to write the model to.")],
    base: Annotated[
        str,
        typer.Option(
            "--base",
            "-b",
            help="The causal LM to tune: transformers:<bundled alias | hub id | folder | .gguf>.",
        ),
    ] = DEFAULT_BASE,
    input_field: Annotated[
        str,
        typer.Option(
            "--input", help="Field or column holding the prompt (in JSONL: text or messages)."
        ),
    ] = "prompt",
    output_field: Annotated[
        str, typer.Option("--output", help="Field or column holding the completion.")
    ] = "completion",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format", help="jsonl, csv or tsv (default: from the extension).", show_default=False
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option(
            "--system",
            help="System message put before each prompt (prompt the tuned model with it too).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Passes over the data.")] = 1,
    max_steps: Annotated[
        int | None,
        typer.Option(
            "--max-steps", min=1, help="Optimizer steps (overrides --epochs).", show_default=False
        ),
    ] = None,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate (AdamW).")] = 2e-4,
    rank: Annotated[int, typer.Option("--rank", "-r", min=1, help="LoRA rank.")] = 8,
    alpha: Annotated[int, typer.Option("--alpha", min=1, help="LoRA alpha (scale alpha/r).")] = 16,
    dropout: Annotated[float, typer.Option("--dropout", help="Dropout on the adapters.")] = 0.05,
    target_modules: Annotated[
        str,
        typer.Option(
            "--target-modules",
            help="Comma-separated module names to adapt, or all-linear.",
        ),
    ] = "q_proj,k_proj,v_proj,o_proj",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Examples per step.")] = 4,
    max_length: Annotated[
        int, typer.Option("--max-length", help="Tokens per example at most (prompt + completion).")
    ] = 512,
    seed: Annotated[int, typer.Option("--seed", help="Seed of init, dropout, order, split.")] = 0,
    val_size: Annotated[
        float,
        typer.Option(
            "--val-size",
            min=0.0,
            help="Validation examples for early stopping: a share below 1, a count from 1; 0: none.",
        ),
    ] = 0.1,
    patience: Annotated[
        int, typer.Option("--patience", min=1, help="Validation scores without progress to stop.")
    ] = 2,
    eval_every: Annotated[
        int | None,
        typer.Option(
            "--eval-every",
            min=1,
            help="Score the validation examples every N steps (default: each epoch).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Use the first N rows only.", show_default=False),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge", help="Also write merged/: the full merged weights.")
    ] = False,
    gguf: Annotated[
        bool, typer.Option("--gguf", help="Also write the merged weights as a GGUF file.")
    ] = False,
    gguf_type: Annotated[
        str, typer.Option("--gguf-type", help="GGUF weight type: f16, f32 or q8_0.")
    ] = "f16",
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")] = (
        "auto"
    ),
    threads: Annotated[
        int | None,
        typer.Option("--threads", min=1, help="CPU threads for training.", show_default=False),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace a model already in --out.")] = (
        False
    ),
) -> None:
    """Fine-tune a small causal LM with LoRA on DATA; write a folder that is a rung."""
    from rung.export.gguf import GGUF_TYPES
    from rung.tune.lm import options_from, read_pairs, split_validation, tune_lora

    if fmt is not None and fmt not in ("jsonl", "csv", "tsv"):
        raise ConfigurationError(f"--format {fmt!r} is not one of jsonl, csv, tsv")
    if gguf and gguf_type not in GGUF_TYPES:
        raise ConfigurationError(f"--gguf-type {gguf_type!r} is not one of {', '.join(GGUF_TYPES)}")
    targets: list[str] | str = (
        "all-linear"
        if target_modules.strip() == "all-linear"
        else [t.strip() for t in target_modules.split(",") if t.strip()]
    )
    options = options_from(
        {
            "rank": rank,
            "alpha": alpha,
            "dropout": dropout,
            "target_modules": targets,
            "epochs": epochs,
            "max_steps": max_steps,
            "lr": lr,
            "batch_size": batch_size,
            "max_length": max_length,
            "seed": seed,
            "eval_every": eval_every,
            "patience": patience,
            "merge": merge,
            "device": device,
            "threads": threads,
        }
    )
    pairs = read_pairs(
        data,
        input_field=input_field,
        output_field=output_field,
        fmt=fmt,  # type: ignore[arg-type]  # checked above
        system=system,
    )
    examples = pairs.examples[:limit] if limit else pairs.examples
    train, val = split_validation(examples, val_size, seed) if val_size > 0 else (examples, [])
    info: dict[str, Any] = pairs.info(input_field, output_field)
    if limit:
        info["limit"] = limit
    console.print(
        f"Tuning [bold]{base}[/] with LoRA on {len(train)} examples"
        + (f" ({len(val)} for validation)" if val else "")
        + f" from {data}",
        highlight=False,
    )
    try:
        with LoraDisplay(console) as display:
            result = tune_lora(
                base,
                train,
                out,
                options,
                val=val,
                data_info=info,
                gguf=gguf_type if gguf else None,  # type: ignore[arg-type]
                progress=display,
                force=force,
            )
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted:[/] nothing was written to {out}")
        raise typer.Exit(130) from None
    card = result.card
    table = Table(title=f"LoRA on {base}", show_header=False, title_justify="left")
    table.add_column(style="dim")
    table.add_column()
    n = card["data"]
    table.add_row(
        "examples",
        f"{n['n_train']} train, {n['n_validation']} validation"
        + (f"; {n['truncated']} cut to {options.max_length} tokens" if n["truncated"] else "")
        + (f"; {pairs.skipped} rows skipped (empty)" if pairs.skipped else ""),
    )
    table.add_row(
        "steps",
        f"{result.steps} ({result.epochs:g} epoch{'' if result.epochs == 1 else 's'})"
        + (", stopped early" if result.stopped_early else ""),
    )
    table.add_row(
        "loss, training examples", _loss_pair(result.train_loss_before, result.train_loss_after)
    )
    table.add_row(
        "loss, validation", _loss_pair(result.validation_loss_before, result.validation_loss)
    )
    table.add_row("training time", f"{result.train_seconds:.0f} s")
    table.add_row("folder", str(result.out))
    if result.gguf is not None:
        table.add_row("GGUF", f"{result.gguf} ({_size(result.gguf.stat().st_size)})")
    console.print(table)
    console.print("Use it as a rung:", highlight=False)
    console.print(f"  transformers:{result.out}", highlight=False, soft_wrap=True)
    if result.gguf is not None:
        console.print(f"  llamacpp:{result.gguf}", highlight=False, soft_wrap=True)
    elif card.get("base_source", {}).get("kind") == "gguf":
        console.print(
            f"  (for llama.cpp: rung export gguf {result.out}, then llamacpp:<file>)",
            highlight=False,
            soft_wrap=True,
        )
    if system:
        console.print(f"Prompt it with the same system message: {system!r}", highlight=False)


def export_gguf_cmd(
    folder: Annotated[Path, typer.Argument(help="A folder written by `rung tune-lm`.")],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="GGUF file to write (default: FOLDER/model-<type>.gguf).",
            show_default=False,
        ),
    ] = None,
    outtype: Annotated[
        str, typer.Option("--type", "-t", help="Weight type: f16, f32 or q8_0.")
    ] = "f16",
    force: Annotated[bool, typer.Option("--force", help="Replace an existing file.")] = False,
) -> None:
    """Write the merged weights of a tune-lm folder as a GGUF file for llama.cpp."""
    from rung.export.gguf import GGUF_TYPES, export_gguf

    if outtype not in GGUF_TYPES:
        raise ConfigurationError(f"--type {outtype!r} is not one of {', '.join(GGUF_TYPES)}")
    kind: Literal["f16", "f32", "q8_0"] = outtype  # type: ignore[assignment]  # checked above
    result = export_gguf(folder, out, outtype=kind, force=force)
    console.print(
        f"Wrote [bold]{result.path}[/] ({_size(result.size_bytes)}, {result.outtype}, "
        f"{result.adapted} of {result.tensors} tensors adapted) in {result.seconds:.1f} s",
        highlight=False,
    )
    console.print(f"Use it as a rung: llamacpp:{result.path}", highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("tune-lm")(user_errors(tune_lm_cmd))
