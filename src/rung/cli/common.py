"""What every command shares: the consoles and the one place errors become messages."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

from rung.errors import RungError

__all__ = ["console", "err_console", "user_errors"]

P = ParamSpec("P")
R = TypeVar("R")

# Piped into a file or a CI log, Rich would fold tables to 80 columns; a wide log reads better.
console = Console(width=None if sys.stdout.isatty() else 160)
err_console = Console(stderr=True, soft_wrap=True)


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
