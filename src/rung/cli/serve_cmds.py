"""``rung serve`` and ``rung keys``: run the server, and manage the API keys it accepts."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from rung.cli.common import console, err_console, user_errors

if TYPE_CHECKING:
    from rung.serve.ledger import Ledger

__all__ = ["register"]

LedgerOpt = Annotated[
    str | None,
    typer.Option(
        "--ledger",
        envvar="RUNG_LEDGER_URL",
        help="SQLAlchemy URL of the key and usage database (default: the config's ledger.url, "
        "else SQLite in the cache folder).",
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="Serve config whose ledger to use.", show_default=False),
]


def serve(
    config: Annotated[
        Path | None, typer.Argument(help="The serve config (YAML).", show_default=False)
    ] = None,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    ledger: LedgerOpt = None,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
    schema: Annotated[
        bool, typer.Option("--schema", help="Print the config's JSON schema and exit.")
    ] = False,
    no_probe: Annotated[
        bool,
        typer.Option(
            "--no-probe",
            help="Start without first loading each local model in a fresh process (that check "
            "turns a native crash into a clear refusal, at the cost of a second load).",
        ),
    ] = False,
) -> None:
    """Serve the models of CONFIG: OpenAI-compatible REST, /v1/classify, GraphQL, metrics."""
    from rung.serve.config import ServeConfig, load_config

    if schema:
        sys.stdout.write(json.dumps(ServeConfig.model_json_schema(), indent=2) + "\n")
        return
    if config is None:
        raise typer.BadParameter("give the serve config file (or --schema)", param_hint="CONFIG")
    try:
        import uvicorn

        from rung.serve.app import create_app
        from rung.serve.rungs import check_can_load
    except ImportError as e:
        from rung.errors import MissingDependencyError

        raise MissingDependencyError(f"rung serve ({e.name})", "pip install 'rung[serve]'") from e
    loaded = load_config(config)
    check_can_load(loaded, probe=not no_probe)  # mistakes as one line, before uvicorn starts
    app = create_app(loaded, ledger_url=ledger)
    if loaded.auth.required:
        err_console.print(
            "API keys are required: create one with [bold]rung keys create --name NAME"
            + (f" --ledger {ledger}" if ledger else f" --config {config}")
            + "[/]"
        )
    if loaded.web.enabled:
        shown = "localhost" if host in ("0.0.0.0", "::") else host
        err_console.print(f"Web page: http://{shown}:{port}/web")
    uvicorn.run(app, host=host, port=port, log_level=log_level)


def _ledger(ledger: str | None, config: Path | None) -> Ledger:
    from rung.serve.config import default_ledger_url, load_config
    from rung.serve.ledger import Ledger

    url = ledger or (load_config(config).ledger_url() if config else default_ledger_url())
    return Ledger(url)


def keys_create(
    name: Annotated[str, typer.Option("--name", help="What the key is for (shown in lists).")],
    rpm: Annotated[
        int | None, typer.Option(help="Requests per minute (default: the server's limit).")
    ] = None,
    budget_usd: Annotated[
        float | None, typer.Option("--budget-usd", help="Most USD the key may spend.")
    ] = None,
    ledger: LedgerOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Create an API key; it is printed once and stored only as a salted hash."""
    from rung.serve.auth import create_key

    db = _ledger(ledger, config)
    try:
        record, key = create_key(db, name, rpm, budget_usd)
    finally:
        db.close()
    err_console.print(
        f"Created key [bold]{record.id}[/] ({record.name}). Keep it now: it is not shown again."
    )
    sys.stdout.write(key + "\n")


def keys_list(
    ledger: LedgerOpt = None,
    config: ConfigOpt = None,
    all_keys: Annotated[bool, typer.Option("--all", help="Include revoked keys.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the API keys with their limits and spend."""

    db = _ledger(ledger, config)
    try:
        records = db.list_keys(include_revoked=all_keys)
        spent = {r.id: db.spent(r.id) for r in records}
    finally:
        db.close()
    rows = [
        {
            "id": r.id,
            "name": r.name,
            "rpm": r.rpm,
            "budget_usd": r.budget_usd,
            "spent_usd": spent[r.id],
            "created": r.created_at.isoformat(timespec="seconds"),
            "revoked": r.revoked_at.isoformat(timespec="seconds") if r.revoked_at else None,
        }
        for r in records
    ]
    if as_json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
        return
    table = Table("id", "name", "rpm", "budget", "spent", "created", "revoked")
    for row in rows:
        table.add_row(
            str(row["id"]),
            str(row["name"]),
            "-" if row["rpm"] is None else str(row["rpm"]),
            "-" if row["budget_usd"] is None else f"${row['budget_usd']:g}",
            f"${row['spent_usd']:.6f}",
            str(row["created"]),
            str(row["revoked"] or "-"),
        )
    console.print(table)


def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id (or the key itself, or its name).")],
    ledger: LedgerOpt = None,
    config: ConfigOpt = None,
) -> None:
    """Revoke an API key: servers refuse it within seconds."""
    from rung.errors import SpecError

    db = _ledger(ledger, config)
    try:
        found = db.find_keys(key)
        if not found:
            raise SpecError(f"no active key {key!r}: see `rung keys list`")
        if len(found) > 1:
            ids = ", ".join(r.id for r in found)
            raise SpecError(f"{len(found)} active keys are named {key!r} ({ids}): give the id")
        db.revoke_key(found[0].id)
    finally:
        db.close()
    err_console.print(f"Revoked key {found[0].id} ({found[0].name}).")


def register(app: typer.Typer) -> None:
    app.command("serve")(user_errors(serve))
    keys = typer.Typer(
        name="keys",
        help="Create, list and revoke the API keys of rung serve.",
        no_args_is_help=True,
    )
    keys.command("create")(user_errors(keys_create))
    keys.command("list")(user_errors(keys_list))
    keys.command("revoke")(user_errors(keys_revoke))
    app.add_typer(keys)
