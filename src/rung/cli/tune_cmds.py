"""``rung tune``: fine-tune an encoder classifier on labelled data into a folder that is a rung.

Data comes from a file (with the compare spine's reading options and split) or from a compare
spec's task, so that the held-out test split is exactly the one ``rung compare`` scores on.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
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
from rung.errors import DataError, SpecError, validation_message

__all__ = ["RichTuneProgress", "register"]


class Method(StrEnum):
    full = "full"
    setfit = "setfit"


class Pooling(StrEnum):
    mean = "mean"
    cls = "cls"


class RichTuneProgress(LiveDisplay):
    """One bar over the optimizer steps, with the smoothed training loss and the last
    validation score."""

    def __init__(self, console: Console, name: str, banner: str = "") -> None:
        self._name = name
        self._banner = banner
        self._progress = Progress(
            TextColumn("[bold]{task.fields[name]}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("val {task.fields[val]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._loss: float | None = None

    def start(self, total_steps: int) -> None:
        if self._banner:
            self._progress.console.print(self._banner, highlight=False)
        self._task = self._progress.add_task(
            "", total=total_steps, name=self._name, loss="-", val="-"
        )

    def step(self, loss: float) -> None:
        # smoothed: single batches jump around too much to read a trend
        self._loss = loss if self._loss is None else 0.9 * self._loss + 0.1 * loss
        if self._task is not None:
            self._progress.update(self._task, advance=1, loss=f"{self._loss:.3f}")

    def evaluated(self, epoch: float, score: float) -> None:
        if self._task is not None:
            self._progress.update(self._task, val=f"{score:.3f} (epoch {epoch:g})")

    def done(self) -> None:
        if self._task is not None:
            self._progress.update(self._task, name=f"{self._name} [green]done[/]")


def _label_map(pairs: list[str] | None) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise SpecError(
                f"--label-map {pair!r} is not of the form OLD=NEW; e.g. --label-map 0=negative"
            )
        mapping[key.strip()] = value.strip()
    return mapping


def _size(value: float | None) -> float | int | None:
    """0.2 is a fraction, 300 a count."""
    if value is None:
        return None
    return int(value) if value >= 1 and float(value).is_integer() else value


def _task_from_file(
    data: Path,
    test: Path | None,
    fmt: str | None,
    text: str,
    label: str,
    label_map: dict[str, str],
    test_size: float | None,
    seed: int,
) -> Any:
    from rung.tasks.classify import ClassifyTask

    source: dict[str, Any] = {"format": fmt, "text": text, "label": label, "label_map": label_map}
    try:
        return ClassifyTask.model_validate(
            {
                "data": {"path": data, **source},
                "test_data": {"path": test, **source} if test is not None else None,
                "test_size": _size(test_size) if test_size is not None else None,
                "seed": seed,
            }
        )
    except ValidationError as e:
        raise SpecError(f"invalid data options: {validation_message(e)}") from None


#: the data readers speak of spec fields; in data mode the user typed flags
_FLAGS = {
    "check data.path in the spec": "check the DATA path",
    "point data.path at": "give DATA",
    "set data.encoding": "save the file as UTF-8",
    "set data.format": "set --format",
    "set data.text in the spec": "set --text",
    "set data.label in the spec": "set --label",
    "set data.id in the spec": "check the file",
    "the spec does not list": "the labels do not include",
    "add them to task.labels": "add them to --labels",
    "data.label_map": "--label-map OLD=NEW",
}


def _as_flags(message: str) -> str:
    for spec_words, flag_words in _FLAGS.items():
        message = message.replace(spec_words, flag_words)
    return message


def _check_listed(listed: list[str], found: tuple[str, ...], counts: dict[str, int]) -> None:
    unknown = [lab for lab in found if lab not in listed]
    if unknown:
        raise DataError(
            "the data has labels that --labels does not list: "
            + ", ".join(f"{lab!r} ({counts.get(lab, 0)} rows)" for lab in unknown)
            + "; add them to --labels or rename them with --label-map OLD=NEW"
        )
    missing = [lab for lab in listed if lab not in found]
    if missing:
        raise DataError(
            f"--labels lists labels that no example has: {', '.join(map(repr, missing))}; "
            f"the data's labels are {', '.join(found)}: fix --labels or --label-map"
        )


def _spec_only(spec: Path, values: dict[str, Any]) -> None:
    given = [flag for flag, value in values.items() if value not in (None, False, [], "")]
    if given:
        raise SpecError(
            f"with --spec the data and its split come from the spec's task; drop "
            f"{', '.join(given)} (or edit {spec})"
        )


def tune_cmd(
    data: Annotated[
        Path | None,
        typer.Argument(
            help="Labelled examples: csv, tsv, jsonl, or .txt with one text@label per line.",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Folder to write the model into.", show_default=False),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec",
            help="Take the data and the train/test split from this compare spec's task, so the "
            "test split is the one `rung compare` scores on.",
            show_default=False,
        ),
    ] = None,
    base: Annotated[
        str,
        typer.Option("--base", help="Encoder to fine-tune: encoder:<bundled name|folder|hub id>."),
    ] = "encoder:minilm-l6",
    method: Annotated[
        Method,
        typer.Option(
            "--method",
            help="full: train every weight with a classification head. setfit: contrastive "
            "pairs then a logistic head, for 8-64 examples per class.",
        ),
    ] = Method.full,
    pooling: Annotated[
        Pooling,
        typer.Option(
            "--pooling",
            help="full: mean (the average of the token states, a sentence-transformers folder "
            "with a linear head) or cls (a transformers *ForSequenceClassification folder).",
        ),
    ] = Pooling.mean,
    text: Annotated[str, typer.Option("--text", help="Column or JSON field of the text.")] = "text",
    label: Annotated[
        str, typer.Option("--label", help="Column or JSON field of the label.")
    ] = "label",
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="csv, tsv, jsonl or at (text@label). Default: from the extension.",
            show_default=False,
        ),
    ] = None,
    label_map: Annotated[
        list[str] | None,
        typer.Option(
            "--label-map",
            help="Rename a label as read: OLD=NEW (repeat the option).",
            show_default=False,
        ),
    ] = None,
    labels: Annotated[
        str | None,
        typer.Option(
            "--labels",
            help="The label set, comma-separated, in the order to report it. Default: every "
            "label in the data, sorted.",
            show_default=False,
        ),
    ] = None,
    test: Annotated[
        Path | None,
        typer.Option(
            "--test",
            help="A separate test file (DATA is then all training data).",
            show_default=False,
        ),
    ] = None,
    test_size: Annotated[
        float | None,
        typer.Option(
            "--test-size",
            help="Test examples held out of DATA: a fraction (0.2) or a count. Default: 0.2, or "
            "all of --test.",
            show_default=False,
        ),
    ] = None,
    val_size: Annotated[
        float | None,
        typer.Option(
            "--val-size",
            help="Validation examples split off the training data: a fraction or a count "
            "(default: 0.1).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            "--seed",
            help="Seed of the splits and the training (default: 0). With --spec the test split "
            "keeps the spec's seed; this one seeds the training (default: the spec's).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "--epochs",
            help="Training epochs (default: 4; setfit: contrastive epochs, default 1).",
            show_default=False,
        ),
    ] = None,
    lr: Annotated[
        float | None,
        typer.Option(
            "--lr", help="Peak learning rate (default: 1e-4 full, 2e-5 setfit).", show_default=False
        ),
    ] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            "--batch-size",
            help="Examples (setfit: pairs) per step (default: 16).",
            show_default=False,
        ),
    ] = None,
    max_seq_length: Annotated[
        int | None,
        typer.Option(
            "--max-seq-length",
            help="Tokens per text; longer ones are truncated (default: 128).",
            show_default=False,
        ),
    ] = None,
    patience: Annotated[
        int | None,
        typer.Option(
            "--patience",
            help="Stop after this many evaluations without a better validation score (0: never; "
            "default: 2).",
            show_default=False,
        ),
    ] = None,
    pairs: Annotated[
        int | None,
        typer.Option(
            "--pairs",
            help="setfit: pairs per training example and epoch (default: 20).",
            show_default=False,
        ),
    ] = None,
    device: Annotated[
        str | None,
        typer.Option(
            "--device", help="auto, cpu, cuda, cuda:1, mps (default: auto).", show_default=False
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            help="Torch CPU threads (default: one per core). On a busy machine 1 can be faster.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Replace a model already in --out (once the new one is done)."
        ),
    ] = False,
) -> None:
    """Fine-tune an encoder classifier on DATA (or a compare spec's task) into --out."""
    from rung.export.folder import check_out, file_sha256
    from rung.tasks.classify import load_task_data
    from rung.tune.encoder import check_base, options_from, resolve_base, tune_classifier

    if out is None:
        raise SpecError(
            "give the folder to write the model into with --out, e.g. --out models/mine"
        )
    if (data is None) == (spec is None):
        raise SpecError(
            "give the labelled data as DATA (a file) or --spec (a compare spec), one of the two"
        )
    info: dict[str, Any]
    if spec is not None:
        from rung.runs.spec import load_spec

        _spec_only(
            spec,
            {
                "--text": text if text != "text" else None,
                "--label": label if label != "label" else None,
                "--format": fmt,
                "--label-map": label_map,
                "--labels": labels,
                "--test": test,
                "--test-size": test_size,
            },
        )
        task = load_spec(spec).task
        base_dir = spec.resolve().parent
        seed = task.seed if seed is None else seed
        info = {"spec": str(spec.resolve())}
    else:
        assert data is not None
        seed = 0 if seed is None else seed
        task = _task_from_file(data, test, fmt, text, label, _label_map(label_map), test_size, seed)
        base_dir = Path.cwd()
        info = {}
    try:
        split = load_task_data(task, base_dir)
    except DataError as e:
        if spec is not None:
            raise
        raise DataError(_as_flags(str(e))) from None
    label_set = split.labels
    if labels is not None:
        listed = [x.strip() for x in labels.split(",") if x.strip()]
        counts: dict[str, int] = {}
        for ex in [*split.train, *split.test]:
            counts[ex.label] = counts.get(ex.label, 0) + 1
        _check_listed(listed, label_set, counts)
        label_set = tuple(listed)
    data_path = task.data.path if task.data.path.is_absolute() else base_dir / task.data.path
    info.update(
        {"path": str(data_path.resolve()), "sha256": file_sha256(data_path), "seed": task.seed}
    )
    if task.test_data is not None:
        test_path = task.test_data.path
        test_path = test_path if test_path.is_absolute() else base_dir / test_path
        info.update({"test_path": str(test_path.resolve()), "test_sha256": file_sha256(test_path)})
    else:
        info["test_size"] = task.test_size if task.test_size is not None else 0.2
    values: dict[str, Any] = {
        "method": method.value,
        "pooling": pooling.value,
        "learning_rate": lr,
        "batch_size": batch_size,
        "max_seq_length": max_seq_length,
        "patience": patience,
        "seed": seed,
        "val_size": _size(val_size),
        "device": device,
        "threads": threads,
        "pairs_per_example": pairs,
        ("epochs" if method is Method.full else "contrastive_epochs"): epochs,
    }
    options = options_from({k: v for k, v in values.items() if v is not None})
    # cheap checks first, so that a wrong base or --out fails before the banner and the load
    check_base(*resolve_base(base), options)
    check_out(out, force)
    if spec is not None and task.train_size is not None:
        console.print(
            f"note: task.train_size limits training to the {len(split.train)} examples the "
            "spec's rungs train on",
            style="dim",
            highlight=False,
        )
    try:
        banner = (
            f"Fine-tuning [bold]{base}[/] ({options.method}) on {len(split.train)} examples, "
            f"{len(label_set)} labels; {len(split.test)} test examples held out"
        )
        with RichTuneProgress(console, options.method, banner) as progress:
            result = tune_classifier(
                base,
                [ex.text for ex in split.train],
                [ex.label for ex in split.train],
                label_set,
                out,
                options,
                test_texts=[ex.text for ex in split.test],
                test_labels=[ex.label for ex in split.test],
                data_info=info,
                progress=progress,
                force=force,
            )
    except KeyboardInterrupt:
        err_console.print(f"[yellow]interrupted:[/] no model was written to {out}")
        raise typer.Exit(130) from None
    console.print(_summary(result.card))
    dropped = result.card["data"].get("dropped_test_overlap")
    if dropped:
        console.print(
            f"note: {dropped} training examples whose text is also a test text were left out",
            style="dim",
            highlight=False,
        )
    console.print(
        f"Trained in {result.train_seconds:.0f} s; weights of epoch {result.best_epoch:g} kept "
        f"(best on validation). Model: [bold]{result.out}[/]",
        highlight=False,
    )
    console.print(f"use it as a rung: [bold]encoder:{result.out}[/]", highlight=False)


def _ci(value: float, ci: list[float]) -> str:
    return f"{value:.3f} [dim][{ci[0]:.2f}-{ci[1]:.2f}][/]"


def _summary(card: dict[str, Any]) -> Table:
    table = Table(
        title=f"{Path(card['base']).name} fine-tuned ({card['method']})", title_justify="left"
    )
    for name in ("split", "examples", "accuracy [95% CI]", "macro-F1 [95% CI]"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for split in ("validation", "test"):
        figures = card.get(split)
        if not figures:
            continue
        table.add_row(
            split,
            str(figures["n"]),
            _ci(figures["accuracy"], figures["accuracy_ci"]),
            _ci(figures["macro_f1"], figures["macro_f1_ci"]),
        )
    return table


def register(app: typer.Typer) -> None:
    app.command("tune")(user_errors(tune_cmd))
