"""The ``rung`` command line."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from rung.cli.display import RichProgress, models_table, summary_table
from rung.errors import RungError

__all__ = ["app"]

P = ParamSpec("P")
R = TypeVar("R")

app = typer.Typer(
    name="rung",
    help="Measure small and large language models on your own task and data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


def user_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """The one place a RungError becomes a message: one line on stderr, exit status 2."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except RungError as e:
            err_console.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err_console.print(
                "[yellow]interrupted:[/] the answers made so far are cached; "
                "run the same command again to resume where it stopped"
            )
            raise typer.Exit(130) from None

    return wrapper


def _run_and_show(run: Callable[[RichProgress], Any]) -> Any:
    with RichProgress(console) as progress:
        result = run(progress)
    console.print(summary_table(result.results))
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
) -> None:
    """Run every rung of SPEC on its task and data; write a run folder with the report."""
    from rung.compare import compare_spec_file

    target = out or Path("runs") / spec.stem
    _run_and_show(
        lambda progress: compare_spec_file(spec, target, use_cache=not no_cache, progress=progress)
    )


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")] = Path(
        "runs/demo"
    ),
    test_size: Annotated[int, typer.Option(help="Test examples (stratified).")] = 150,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Ask every rung again.")] = False,
) -> None:
    """Compare the bundled ladder on the bundled financial-sentiment data (offline)."""
    from rung.compare import compare_spec
    from rung.datasets import demo_spec

    spec, base_dir = demo_spec(test_size=test_size, environ=os.environ)
    console.print(
        f"Comparing {len(spec.models)} rungs on {test_size} financial news sentences: "
        + ", ".join(m.display for m in spec.models)
    )
    _run_and_show(
        lambda progress: compare_spec(
            spec, base_dir, out, use_cache=not no_cache, progress=progress
        )
    )


@app.command()
@user_errors
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


@app.command()
def schema() -> None:
    """Print the JSON schema of the compare spec."""
    from rung.compare.spec import CompareSpec

    sys.stdout.write(json.dumps(CompareSpec.model_json_schema(), indent=2) + "\n")


if __name__ == "__main__":
    app()
