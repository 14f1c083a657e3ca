"""A test double for what is not under test: a tiny HTTP service (starlette under uvicorn, on
a free loopback port, in a thread) for the http step to call over a real socket."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

__all__ = ["running_service_double"]


async def echo(request: Request) -> Response:
    body = await request.json() if request.method == "POST" else None
    return JSONResponse(
        {
            "method": request.method,
            "query": dict(request.query_params),
            "body": body,
            "header": request.headers.get("x-flow"),
        }
    )


async def slow(request: Request) -> Response:
    await asyncio.sleep(2)
    return PlainTextResponse("late")


async def broken(request: Request) -> Response:
    return PlainTextResponse("boom", status_code=500)


async def away(request: Request) -> Response:
    return RedirectResponse("http://example.com/")


async def big(request: Request) -> Response:
    return PlainTextResponse("x" * 50_000)


SERVICE_DOUBLE = Starlette(
    routes=[
        Route("/echo", echo, methods=["GET", "POST"]),
        Route("/slow", slow, methods=["GET", "POST"]),
        Route("/broken", broken, methods=["GET", "POST"]),
        Route("/away", away, methods=["GET", "POST"]),
        Route("/big", big, methods=["GET", "POST"]),
    ]
)


@contextmanager
def running_service_double() -> Iterator[str]:
    """The service's base URL while it runs."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(SERVICE_DOUBLE, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the service double did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
