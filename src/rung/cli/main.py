"""The ``rung`` command line."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ParamSpec, TypeVar

import typer
from rich.markup import escape

from rung.cli import (
    catalog_cmds,
    check_cmds,
    distill_cmds,
    export_cmds,
    flow_cmds,
    index_cmds,
    route_cmds,
    serve_cmds,
    tune_cmds,
    tune_lm_cmds,
    tune_tags_cmds,
)
from rung.cli.common import console, err_console, user_errors
from rung.cli.display import RichProgress, summary_table
from rung.errors import did_you_mean
from rung.runs.spec import CompareSpec

if TYPE_CHECKING:
    from rung.compare.tasks import TaskSpec

__all__ = ["app"]

P = ParamSpec("P")
R = TypeVar("R")
SpecT = TypeVar("SpecT", bound="CompareSpec | TaskSpec")

app = typer.Typer(
    name="rung",
    help="Measure small and large language models on your own task and data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


QUICK = typer.Option(
    "--quick", help="Quality and latency only: skip the load test and the memory probe."
)


def _quick(spec: SpecT) -> SpecT:
    measure = spec.measure.model_copy(update={"load": None, "memory": False})
    # model_copy keeps the spec's own type; mypy reads it off the bound's union.
    return spec.model_copy(update={"measure": measure})  # type: ignore[return-value]


def _run_and_show(run: Callable[[RichProgress], Any]) -> Any:
    with RichProgress(console) as progress:
        result = run(progress)
    console.print(summary_table(result.results))
    for failed in result.results.failed:
        err_console.print(f"[red]Not measured:[/] {escape(failed.error)}")
    console.print(f"Report: [bold]{result.out / 'report.md'}[/]")
    console.print(
        f"Results: {result.out / 'results.json'}   Predictions: {result.out / 'predictions.jsonl'}"
    )
    return result


@app.command()
@user_errors
def compare(
    spec: Annotated[Path, typer.Argument(help="The compare spec (YAML).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder to write (default: runs/<spec name>)."),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Ask every rung again instead of reusing cached answers."),
    ] = False,
    quick: Annotated[bool, QUICK] = False,
) -> None:
    """Run every rung of SPEC on its task and data; write a run folder with the report."""
    from rung.app import compare_spec
    from rung.app.compare import load_any_spec

    target = out or Path("runs") / spec.stem
    found = load_any_spec(spec)
    loaded = _quick(found) if quick else found
    _run_and_show(
        lambda progress: compare_spec(
            loaded, spec.resolve().parent, target, use_cache=not no_cache, progress=progress
        )
    )


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")] = Path(
        "runs/demo"
    ),
    test_size: Annotated[int, typer.Option(help="Test examples (stratified).")] = 150,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask every rung again.")] = False,
    quick: Annotated[bool, QUICK] = False,
) -> None:
    """Compare the bundled ladder on the bundled financial-sentiment data (offline)."""
    from rung.app import compare_spec
    from rung.datasets import demo_spec

    spec, base_dir = demo_spec(test_size=test_size, environ=os.environ)
    spec = _quick(spec) if quick else spec
    console.print(
        f"Comparing {len(spec.models)} rungs on {test_size} financial news sentences: "
        + ", ".join(m.display for m in spec.models)
    )
    _run_and_show(
        lambda progress: compare_spec(
            spec, base_dir, out, use_cache=not no_cache, progress=progress
        )
    )


SCHEMAS = {
    "spec": "the compare spec of a classify task (YAML)",
    "results": "a run folder's results.json",
    "prediction": "a line of a run folder's predictions.jsonl",
}


@app.command()
@user_errors
def schema(
    what: Annotated[
        str,
        typer.Argument(
            help="spec (default), results, prediction, or a task type (summarize, answer, ...) "
            "for the spec of that task.",
            show_default=False,
        ),
    ] = "spec",
) -> None:
    """Print the JSON schema of the compare spec (of any task type), or of a run folder's
    results.json or predictions.jsonl lines."""
    from pydantic import BaseModel

    from rung.compare.tasks import spec_model
    from rung.errors import SpecError
    from rung.runs import PredictionRow, RunResults
    from rung.tasks.registry import task_types

    models: dict[str, type[BaseModel]] = {
        "spec": CompareSpec,
        "results": RunResults,
        "prediction": PredictionRow,
        "classify": CompareSpec,
    }
    types = task_types()
    if what in types and what not in models:
        models[what] = spec_model(what)
    if what not in models:
        known = "; ".join(f"{k}: {v}" for k, v in SCHEMAS.items())
        raise SpecError(
            f"no schema named {what!r}{did_you_mean(what, [*models, *types])}; known: {known}; "
            f"or a task type: {', '.join(types)}"
        )
    sys.stdout.write(json.dumps(models[what].model_json_schema(), indent=2) + "\n")


catalog_cmds.register(app)
route_cmds.register(app)
serve_cmds.register(app)
tune_lm_cmds.register(app)
tune_cmds.register(app)
tune_tags_cmds.register(app)
distill_cmds.register(app)
export_cmds.register(app)
index_cmds.register(app)
check_cmds.register(app)
flow_cmds.register(app)

if __name__ == "__main__":
    app()
