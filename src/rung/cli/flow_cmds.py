"""``rung flow check FILE`` and ``rung flow run FILE --input k=v``."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from rung.cli.common import console, user_errors
from rung.errors import DataError

__all__ = ["register"]

FILE = typer.Argument(help="The flow file (YAML).")


def check_cmd(file: Annotated[Path, FILE]) -> None:
    """Check a flow file without running it: fields, references, step order, types, and that
    its models and indexes are there."""
    from rung.flows import FlowRunner, load_flow

    flow = load_flow(file)
    FlowRunner(flow).check()
    inputs = ", ".join(f"{n} ({i.type})" for n, i in flow.spec.inputs.items()) or "none"
    console.print(f"[green]ok[/] {escape(flow.name)} version {flow.version}")
    console.print(f"inputs: {escape(inputs)}")
    console.print("steps: " + " -> ".join(f"{s} ({flow.step(s).type})" for s in flow.order))


def _parse_inputs(pairs: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise DataError(f"--input {pair!r} is not of the form name=value")
        values[name.strip()] = value
    return values


def run_cmd(
    file: Annotated[Path, FILE],
    input: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", help="An input as name=value; repeat for each input."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result (outputs and trace) as JSON.")
    ] = False,
) -> None:
    """Run a flow once and show its outputs and the trace of every step."""
    from rung.flows import FlowRunner, load_flow

    flow = load_flow(file)
    runner = FlowRunner(flow)

    async def go() -> dict[str, Any]:
        try:
            return (await runner.run(_parse_inputs(input or []))).to_json()
        finally:
            await runner.aclose()

    result = asyncio.run(go())
    if as_json:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        return
    table = Table(title=f"{escape(flow.name)} version {result['version']}")
    for column in ("step", "type", "status", "ms", "tokens in/out", "cost $", "output"):
        table.add_column(column)
    for t in result["trace"]:
        output = json.dumps(t["output"], ensure_ascii=False) if t["output"] is not None else ""
        table.add_row(
            t["id"],
            t["type"],
            t["status"],
            f"{t['latency_ms']:.0f}",
            f"{t['tokens_in']}/{t['tokens_out']}",
            "" if t["cost_usd"] is None else f"{t['cost_usd']:.6f}",
            escape(output[:80] + ("..." if len(output) > 80 else "")),
        )
    console.print(table)
    for name, value in result["outputs"].items():
        console.print(f"[bold]{escape(name)}:[/] {escape(str(value))}")


def schema_cmd() -> None:
    """Print the JSON schema of a flow file."""
    from rung.flows import FlowSpec

    sys.stdout.write(json.dumps(FlowSpec.model_json_schema(by_alias=True), indent=2) + "\n")


def register(app: typer.Typer) -> None:
    flow_app = typer.Typer(
        name="flow",
        help="Flows: YAML pipelines of retrieve / prompt / model / classify / route steps.",
        no_args_is_help=True,
    )
    flow_app.command("check")(user_errors(check_cmd))
    flow_app.command("run")(user_errors(run_cmd))
    flow_app.command("schema")(user_errors(schema_cmd))
    app.add_typer(flow_app, name="flow")
