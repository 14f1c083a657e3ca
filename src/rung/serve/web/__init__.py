"""The web page of ``rung serve`` at ``/web``: log in with an API key, see the compare runs and
their reports, try the served rungs side by side (streamed through the server's own
``/v1/chat/completions``), run flows (through
``/v1/flows/<name>/run``, with the trace of each step), and, for an admin key, see every key and its usage.

Server-rendered (jinja2), no build step; the two scripts in ``static/`` are plain JS.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from rung.serve.state import ServeState
from rung.serve.web.pages import HERE, WebPages
from rung.serve.web.sessions import WebSessions

__all__ = ["WebSessions", "web_routes"]


def web_routes(state: ServeState, sessions: WebSessions) -> list[BaseRoute]:
    pages = WebPages(state, sessions)
    return [
        Route("/", pages.home, methods=["GET"]),
        Route("/web", pages.home, methods=["GET"]),
        Route("/web/", pages.home, methods=["GET"]),
        Route("/web/login", pages.login_form, methods=["GET"]),
        Route("/web/login", pages.login, methods=["POST"]),
        Route("/web/logout", pages.logout, methods=["POST"]),
        Route("/web/runs", pages.runs, methods=["GET"]),
        Route("/web/runs/{name}", pages.run, methods=["GET"]),
        Route("/web/runs/{name}/report.html", pages.report, methods=["GET"]),
        Route("/web/playground", pages.playground, methods=["GET"]),
        Route("/web/flows", pages.flows_page, methods=["GET"]),
        Route("/web/keys", pages.keys, methods=["GET"]),
        Mount("/web/static", StaticFiles(directory=HERE / "static"), name="web-static"),
    ]
