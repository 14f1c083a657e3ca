"""The ASGI app of ``rung serve``: ``create_app(config)`` returns a Starlette app whose lifespan
loads the models and opens the ledger.

Every request passes the gateway (a plain ASGI middleware, cheap on the hot path): it checks the
key, the rate limit and the budget of the API endpoints, times the request, counts it in the
metrics and logs its usage to the ledger. The endpoints themselves live in ``rest`` and
``graphql``.

Run it with ``rung serve CONFIG.yaml``, or under any ASGI server::

    uvicorn --factory 'rung.serve.app:app_from_env'   # reads $RUNG_SERVE_CONFIG
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rung.errors import ConfigurationError
from rung.serve import flows, rest
from rung.serve.config import ServeConfig, load_config
from rung.serve.errors import ApiError, error_response
from rung.serve.graphql import graphql_app
from rung.serve.ledger import UsageRow
from rung.serve.state import ServeState, UsageSlot
from rung.serve.web import WebSessions, web_routes

__all__ = ["app_from_env", "create_app"]

log = logging.getLogger("rung.serve")

#: path -> the endpoint name used in metrics and the ledger
ENDPOINTS = {
    "/v1/chat/completions": "chat.completions",
    "/v1/completions": "completions",
    "/v1/embeddings": "embeddings",
    "/v1/classify": "classify",
    "/v1/ask": "ask",
    "/v1/models": "models",
    "/graphql": "graphql",
    "/healthz": "healthz",
    "/metrics": "metrics",
}


def _endpoint(path: str) -> str:
    if path in ENDPOINTS:
        return ENDPOINTS[path]
    if path.startswith("/v1/models/"):
        return "models"
    if path.startswith("/v1/flows"):
        return "flows"
    return "other"


def _needs_key(scope: Scope) -> bool:
    path: str = scope["path"]
    if path.startswith("/v1/"):
        return True
    # GET /graphql is the GraphiQL page; queries come by POST, with the key
    return path == "/graphql" and scope["method"] != "GET"


class Gateway:
    """Access control, metrics and the usage ledger around every HTTP request."""

    def __init__(
        self, app: ASGIApp, state: ServeState, sessions: WebSessions | None = None
    ) -> None:
        self.app = app
        self.state = state
        self.sessions = sessions

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        slot = UsageSlot()
        scope["rung.usage"] = slot
        status = 500
        state = self.state
        endpoint = _endpoint(scope["path"])
        recorded = False

        def record() -> None:
            nonlocal recorded
            if recorded:
                return
            recorded = True
            elapsed = time.perf_counter() - started
            state.metrics.observe(
                slot.model,
                endpoint,
                status,
                elapsed,
                slot.tokens_in,
                slot.tokens_out,
                slot.cost_usd,
            )
            if slot.principal is not None and state.gate is not None:
                state.gate.record(
                    UsageRow(
                        ts=datetime.now(UTC),
                        key_id=slot.principal.key_id,
                        endpoint=endpoint,
                        model=slot.model,
                        rung=slot.rung,
                        tokens_in=slot.tokens_in,
                        tokens_out=slot.tokens_out,
                        cost_usd=slot.cost_usd,
                        latency_ms=elapsed * 1000,
                        status=status,
                    )
                )

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                # Count the request before its last byte leaves: a client that reads its usage
                # or the metrics right after the response must find this request in them.
                record()
            await send(message)

        try:
            if _needs_key(scope):
                if state.gate is None:
                    raise ApiError(503, "the server is starting: retry in a moment", "server_error")
                authorization = None
                for name, value in scope["headers"]:
                    if name == b"authorization":
                        authorization = value.decode("latin-1")
                        break
                if authorization is None and self.sessions is not None:
                    # the web page's own calls: its session stands for the key it logged in with
                    authorization = self.sessions.authorization(scope)
                slot.principal = await state.gate.admit(authorization)
        except ApiError as e:
            await error_response(e)(scope, receive, send_status)
            return
        try:
            await self.app(scope, receive, send_status)
        finally:
            # a client that left, or an app that raised, never sent the last body message
            record()


async def _http_error(request: Request, exc: Exception) -> Response:
    return error_response(exc)


def create_app(config: ServeConfig, *, ledger_url: str | None = None) -> Starlette:
    """The server for ``config``. Models load, and the ledger opens, in the app's lifespan."""
    state = ServeState(config, ledger_url or config.ledger_url())
    # a broken flow file stops the server here, before it listens, naming file:line
    state.flows = flows.load_library(config)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        log.info("serving %s", ", ".join(state.models) or "no models")
        try:
            yield
        finally:
            await state.stop()

    routes: list[BaseRoute] = [
        Route("/v1/chat/completions", rest.chat_completions, methods=["POST"]),
        Route("/v1/completions", rest.completions, methods=["POST"]),
        Route("/v1/embeddings", rest.embeddings, methods=["POST"]),
        Route("/v1/classify", rest.classify, methods=["POST"]),
        Route("/v1/ask", rest.ask, methods=["POST"]),
        Route("/v1/models", rest.list_models, methods=["GET"]),
        Route("/v1/models/{name:path}", rest.retrieve_model, methods=["GET"]),
        Route("/v1/flows", flows.list_flows, methods=["GET"]),
        Route("/v1/flows/{name}/run", flows.run_flow, methods=["POST"]),
        Route("/graphql", graphql_app(state), methods=["GET", "POST"]),
        Route("/healthz", rest.healthz, methods=["GET"]),
        Route("/metrics", rest.metrics, methods=["GET"]),
    ]
    sessions = None
    if config.web.enabled:
        sessions = WebSessions(config.web.session_hours * 3600)
        routes += web_routes(state, sessions)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Gateway, state=state, sessions=sessions)],
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.rung = state
    return app


def app_from_env() -> Starlette:
    """For ``uvicorn --factory``: the config named by $RUNG_SERVE_CONFIG."""
    path = os.environ.get("RUNG_SERVE_CONFIG")
    if not path:
        raise ConfigurationError("set RUNG_SERVE_CONFIG to the serve config file (YAML)")
    return create_app(load_config(Path(path)), ledger_url=os.environ.get("RUNG_LEDGER_URL"))
