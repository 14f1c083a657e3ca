"""``rung serve``: the ladder behind one API (OpenAI-compatible REST, rung's task endpoints,
GraphQL), with API keys, rate limits, budgets, a usage ledger and Prometheus metrics.

Importing this package imports none of the server libraries; ``create_app`` does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rung.serve.config import ServeConfig, load_config, parse_config

if TYPE_CHECKING:
    from starlette.applications import Starlette

__all__ = ["ServeConfig", "create_app", "load_config", "parse_config"]


def create_app(config: ServeConfig, *, ledger_url: str | None = None) -> Starlette:
    from rung.serve.app import create_app as _create_app

    return _create_app(config, ledger_url=ledger_url)
