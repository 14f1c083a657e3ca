"""The real app, driven from synchronous tests: its lifespan runs in an event loop on a thread
of its own, and the same app is reached both in-process (httpx's ASGI transport) and over a
real socket (uvicorn on a free loopback port, serving from that same loop)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import threading
import time
from collections.abc import Coroutine
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import httpx
import uvicorn
from starlette.applications import Starlette

from rung.serve.state import ServeState

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppHarness:
    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._lifespan: AbstractAsyncContextManager[Any] | None = None
        self.server: uvicorn.Server | None = None
        self._serving: concurrent.futures.Future[None] | None = None
        self.base_url = ""

    @property
    def state(self) -> ServeState:
        state: ServeState = self.app.state.rung
        return state

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 300) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self, http: bool = False) -> AppHarness:
        self.thread.start()
        self._lifespan = self.app.router.lifespan_context(self.app)
        self.run(self._lifespan.__aenter__())
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app), base_url="http://rung.test", timeout=120
        )
        if http:
            port = free_port()
            # lifespan off: this harness already ran it, and the models stay loaded once
            config = uvicorn.Config(
                self.app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"
            )
            self.server = uvicorn.Server(config)
            self._serving = asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop)
            deadline = time.monotonic() + 30
            while not self.server.started:
                if time.monotonic() > deadline or (self._serving and self._serving.done()):
                    raise RuntimeError("uvicorn did not start")
                time.sleep(0.02)
            self.base_url = f"http://127.0.0.1:{port}"
        return self

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.run(self.client.request(method, path, **kwargs))

    def post(self, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.request("POST", path, headers=headers, **kwargs)

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.request("GET", path, headers=headers, **kwargs)

    def flush(self) -> None:
        assert self.state.gate is not None
        self.run(self.state.gate.flush())

    def stop(self) -> None:
        try:
            if self.server is not None and self._serving is not None:
                self.server.should_exit = True
                self._serving.result(30)
            self.run(self.client.aclose())
            if self._lifespan is not None:
                self.run(self._lifespan.__aexit__(None, None, None))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(30)
            self.loop.close()
