"""``rung check``: the spec run again and gated against a baseline run, for CI. Exit 0 when it
passes, 1 when a rung regressed (or broke a budget), 2 when the check cannot be made."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from rung.cli.common import err_console, user_errors
from rung.cli.display import RichProgress

__all__ = ["register"]


def _write(path: Path, text: str, mode: str = "w") -> None:
    from rung.errors import RunError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open(mode, encoding="utf-8") as f:
            f.write(text)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e}; choose another path") from None


def check_cmd(
    spec: Annotated[Path, typer.Argument(help="The compare spec (YAML), with its check: section.")],
    baseline: Annotated[
        Path,
        typer.Option(
            "--baseline", "-b", help="The baseline run folder (of `rung compare` or `rung check`)."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder to write (default: runs/<spec name>-check)."),
    ] = None,
    against: Annotated[
        str | None,
        typer.Option(
            "--against",
            help="Read the baseline run folder as this git ref holds it (e.g. main), not from "
            "the working tree.",
            show_default=False,
        ),
    ] = None,
    json_path: Annotated[
        Path | None, typer.Option("--json", help="Write the verdict as JSON to this file.")
    ] = None,
    junit_path: Annotated[
        Path | None, typer.Option("--junit", help="Write the verdict as JUnit XML to this file.")
    ] = None,
    markdown_path: Annotated[
        Path | None,
        typer.Option(
            "--markdown",
            help="Also write the Markdown summary to this file (e.g. $GITHUB_STEP_SUMMARY).",
        ),
    ] = None,
    no_cache: Annotated[
        bool,
        typer.Option("--no-cache", help="Ask every rung again instead of reusing cached answers."),
    ] = False,
) -> None:
    """Run SPEC again and test it against the BASELINE run, item by item: exit 1 when a rung
    regressed beyond its margin with statistical support or broke a budget, 0 when it passed.
    The Markdown summary goes to stdout."""
    from rung.app import check_spec
    from rung.app.check import baseline_at_ref
    from rung.app.compare import load_any_spec
    from rung.check import render_json, render_junit, render_markdown

    loaded = load_any_spec(spec)
    target = out or Path("runs") / f"{spec.stem}-check"
    with tempfile.TemporaryDirectory(prefix="rung-baseline-") as tmp:
        if against is not None:
            baseline = baseline_at_ref(against, baseline, Path(tmp) / "baseline")
        # Progress on stderr: stdout is the summary, to pipe into a pull request comment.
        with RichProgress(err_console) as progress:
            result = check_spec(
                loaded,
                spec.resolve().parent,
                baseline,
                target,
                use_cache=not no_cache,
                progress=progress,
            )
    report = result.report
    markdown = render_markdown(report, f"rung check: {loaded.name or spec.stem}")
    if json_path is not None:
        _write(json_path, json.dumps(render_json(report), indent=2, ensure_ascii=False) + "\n")
    if junit_path is not None:
        _write(junit_path, render_junit(report, f"rung check {loaded.name or spec.stem}"))
    if markdown_path is not None:
        # Appended: $GITHUB_STEP_SUMMARY gathers every step's summary in one file.
        _write(markdown_path, markdown, "a")
    sys.stdout.write(markdown)
    sys.stdout.flush()
    if report.failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(user_errors(check_cmd))
