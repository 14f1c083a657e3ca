"""``rung distill``: label texts with a teacher rung, train a small student on its labels."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from rung.cli.common import console, user_errors
from rung.cli.tune_cmds import Method

__all__ = ["register"]


def distill_cmd(
    spec: Annotated[
        Path,
        typer.Argument(
            help="A compare spec: its task gives the labels, the teacher's prompt and the gold "
            "test split the student and the teacher are scored on."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the student model.")],
    teacher: Annotated[
        str | None,
        typer.Option(
            "--teacher",
            "-t",
            help="The rung that labels: a rung of the spec (label or id) or any model id. "
            "Default: the spec's last rung.",
        ),
    ] = None,
    student: Annotated[
        str, typer.Option("--student", "-s", help="The encoder to fine-tune on the labels.")
    ] = "encoder:minilm-l6",
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            "--unlabelled",
            "-u",
            help="Texts to label (CSV, TSV, JSONL, or .txt with one text per line). Default: "
            "the spec's training split, its gold labels hidden from the student.",
        ),
    ] = None,
    text: Annotated[
        str, typer.Option("--text", help="Column or field of --unlabelled holding the text.")
    ] = "text",
    gold: Annotated[
        str | None,
        typer.Option(
            "--gold",
            help="Column of --unlabelled holding gold labels, if some exist: they measure the "
            "teacher's labels and are never trained on.",
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold", min=0.0, max=1.0, help="Keep teacher labels at least this confident."
        ),
    ] = 0.0,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Label at most this many texts.")
    ] = None,
    method: Annotated[
        Method, typer.Option("--method", help="How the student is tuned: full or setfit.")
    ] = Method.full,
    epochs: Annotated[
        int | None, typer.Option("--epochs", min=1, help="Training epochs of the student.")
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Seed of the student's training.")
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Ask the teacher again instead of reusing its answers."),
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Replace a model already in --out.")
    ] = False,
) -> None:
    """Label texts with a TEACHER rung, fine-tune a STUDENT on the confident labels, and report
    both on the gold test split, with the agreement and what the labelling cost."""
    from rung.cli.display import RichProgress
    from rung.cli.tune_cmds import RichTuneProgress
    from rung.runs.spec import load_spec
    from rung.tune import TuneOptions
    from rung.tune.distill import (
        DistillSettings,
        label_pool,
        pick_teacher,
        read_unlabelled,
        train_student,
    )

    loaded = load_spec(spec)
    settings = DistillSettings(threshold=threshold, limit=limit)
    overrides: dict[str, Any] = {"method": method.value}
    if epochs is not None:
        overrides["epochs"] = epochs
    if seed is not None:
        overrides["seed"] = seed
    options = TuneOptions(**overrides)
    ref = pick_teacher(loaded, teacher)
    pool = (
        read_unlabelled(unlabelled, text_field=text, gold_field=gold)
        if unlabelled is not None
        else None
    )
    with RichProgress(console) as progress:
        labelled = label_pool(
            loaded,
            spec.resolve().parent,
            out,
            teacher=ref,
            unlabelled=pool,
            settings=settings,
            use_cache=not no_cache,
            progress=progress,
            force=force,
        )
    _show_labelling(labelled)
    name = f"{student} on {labelled.stats.kept} teacher labels"
    with RichTuneProgress(console, name) as tune_progress:
        report = train_student(
            labelled,
            out,
            student_base=student,
            tune_options=options,
            progress=tune_progress,
            force=force,
        )
    _show(report)


def _show_labelling(labelled: Any) -> None:
    stats = labelled.stats
    console.print(
        f"Teacher {labelled.teacher} labelled {stats.asked} texts ({stats.cached} from the "
        f"cache); kept {stats.kept} (dropped {stats.low_confidence} below the threshold, "
        f"{stats.unparsed} not a label)"
        + (
            f"; {stats.no_confidence} had no confidence and were kept"
            if stats.no_confidence
            else ""
        )
    )
    if stats.teacher_label_accuracy is not None:
        console.print(
            f"Teacher labels agree with the pool's gold labels on {stats.teacher_label_accuracy:.1%}"
        )
    cost = "unknown" if labelled.cost_usd is None else f"${labelled.cost_usd:.4f}"
    console.print(f"Labelling cost: {cost} ({labelled.cost_detail})")


def _show(report: Any) -> None:
    table = Table(title=f"Gold test split ({report.test_n} examples)")
    for col in ("rung", "accuracy", "95% CI", "macro-F1"):
        table.add_column(col)
    for name, scores in (
        (f"teacher {report.teacher}", report.teacher_test),
        (f"student encoder:{report.out}", report.student_test),
    ):
        low, high = scores["accuracy_ci"]
        table.add_row(
            name, f"{scores['accuracy']:.3f}", f"{low:.2f}-{high:.2f}", f"{scores['macro_f1']:.3f}"
        )
    console.print(table)
    console.print(f"Student agrees with the teacher on {report.agreement:.1%} of the test split")
    console.print(
        f"Use it as a rung: [bold]encoder:{report.out}[/]   Report: {report.out / 'distill.json'}"
    )


def register(app: typer.Typer) -> None:
    app.command("distill")(user_errors(distill_cmd))
