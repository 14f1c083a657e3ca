"""``rung route``: calibrate a cascade's thresholds on a compare run, and replay a run through
a cascade."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Annotated

import typer

from rung.cli.common import console, user_errors

__all__ = ["register"]

RunDirArg = Annotated[
    Path, typer.Argument(help="A compare run folder (with predictions.jsonl and results.json).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
ResamplesOpt = Annotated[
    int, typer.Option("--resamples", min=100, help="Bootstrap resamples for the 95% intervals.")
]


def _name_from(run_dir: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_dir.resolve().name).strip("-")
    return name or "cascade"


def _print_notes(notes: list[str] | tuple[str, ...]) -> None:
    for note in notes:
        console.print(f"note: {note}", style="dim", highlight=False)


def calibrate_cmd(
    run_dir: RunDirArg,
    target: Annotated[
        float,
        typer.Option(
            "--target",
            help="Accuracy (a text task's primary metric) to keep, as a share of the best "
            "rung's (0-1].",
        ),
    ] = 0.99,
    rungs: Annotated[
        str | None,
        typer.Option(
            "--rungs",
            help="Rungs to use, small to large, comma-separated (labels or model ids). "
            "Default: every rung of the run, by cost per request.",
            show_default=False,
        ),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Cascade name (default: the run folder's name).", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Serve config YAML to write the cascade into (cascades.<name>; other "
            "content of an existing file is kept).",
            show_default=False,
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot", help="Write the cost-quality curve as an HTML file.", show_default=False
        ),
    ] = None,
    holdout: Annotated[
        float,
        typer.Option(
            "--holdout",
            help="Share of the examples kept aside to check the chosen thresholds on (0: none).",
        ),
    ] = 0.0,
    resamples: ResamplesOpt = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Pick the thresholds that keep accuracy at TARGET × the top rung's at the least cost."""
    from rung.route.calibrate import calibrate
    from rung.route.config import cascade_section, write_cascade
    from rung.route.render import evaluation_table, summary_lines, write_curve_html
    from rung.route.table import load_run
    from rung.runs import RunFolder

    table = load_run(run_dir)
    chosen_rungs = [r.strip() for r in rungs.split(",") if r.strip()] if rungs else None
    cal = calibrate(table, target, chosen_rungs, holdout=holdout, resamples=resamples)
    cascade_name = name or _name_from(run_dir)
    section = cascade_section(cal.policy, table, RunFolder(run_dir).spec())
    if out is not None:
        write_cascade(out, cascade_name, section)
    if plot is not None:
        write_curve_html(cal, plot)
    if as_json:
        payload = cal.to_json()
        payload["name"] = cascade_name
        payload["cascade"] = section
        payload["written"] = {"out": str(out) if out else None, "plot": str(plot) if plot else None}
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console.print(f"Cascade [bold]{cascade_name}[/]: {cal.policy.describe()}", highlight=False)
    console.print(
        f"target: {cal.target:g} × {cal.top}'s {cal.metric} {cal.top_accuracy:.3f} = "
        f"{cal.required_accuracy:.3f}; {cal.evaluated:,} cascades tried over "
        f"{' → '.join(cal.order)}",
        highlight=False,
    )
    console.print(evaluation_table(cal.chosen, f"On the {cal.chosen.n} calibration examples"))
    for line in summary_lines(cal.chosen):
        console.print(line, highlight=False)
    if cal.holdout is not None:
        console.print(evaluation_table(cal.holdout, f"On the {cal.holdout.n} held-out examples"))
        for line in summary_lines(cal.holdout):
            console.print(line, highlight=False)
    if out is not None:
        console.print(f"Wrote cascades.{cascade_name} to [bold]{out}[/]", highlight=False)
    if plot is not None:
        console.print(f"Cost-quality curve: [bold]{plot}[/]", highlight=False)
    _print_notes(cal.notes)


def simulate_cmd(
    run_dir: RunDirArg,
    cascade: Annotated[
        Path, typer.Option("--cascade", help="YAML with a cascades: section (serve config).")
    ],
    name: Annotated[
        str | None,
        typer.Option(
            "--name", help="Which cascade of the file (default: the only one).", show_default=False
        ),
    ] = None,
    resamples: ResamplesOpt = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Replay RUN_DIR through a cascade: accuracy, cost and the share each rung answers."""
    from rung.route.config import policy_of, read_cascade
    from rung.route.render import evaluation_table, summary_lines
    from rung.route.simulate import simulate
    from rung.route.table import load_run

    table = load_run(run_dir)
    cascade_name, options = read_cascade(cascade, name)
    policy = policy_of(options, table)
    evaluation = simulate(table, policy, resamples=resamples)
    if as_json:
        payload = evaluation.to_json()
        payload["name"] = cascade_name
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return
    console.print(f"Cascade [bold]{cascade_name}[/]: {policy.describe()}", highlight=False)
    console.print(
        evaluation_table(evaluation, f"Replayed over {evaluation.n} examples of {run_dir}")
    )
    for line in summary_lines(evaluation):
        console.print(line, highlight=False)
    _print_notes(evaluation.notes)


def register(app: typer.Typer) -> None:
    route_app = typer.Typer(
        name="route",
        help="The SLM-first cascade: calibrate its thresholds on a compare run, replay runs "
        "through it.",
        no_args_is_help=True,
    )
    route_app.command("calibrate")(user_errors(calibrate_cmd))
    route_app.command("simulate")(user_errors(simulate_cmd))
    app.add_typer(route_app, name="route")
