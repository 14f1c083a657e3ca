"""InstantUpstreamDouble: a test double of an OpenAI-compatible upstream that answers at once.

    python benchmarks/upstream_double.py [--port 0] [--label positive]

It is not a model: every ``POST /v1/chat/completions`` gets the same small, valid chat
completion (the label as the answer text, usage, and the first token's top log-probabilities
when the request asks for ``logprobs``). It exists so that a load benchmark measures the load
generator, not the upstream: a bare asyncio protocol (no framework, no HTTP library) that parses
HTTP/1.1 with keep-alive and pipelining and writes a prebuilt response. It runs in its own
process (the ``InstantUpstreamDouble`` context manager starts it) so that it never shares a GIL
with the client under test.

Besides the chat completions it answers ``GET /v1/models`` (one model, ``double``), and
``GET /stats``: the chat completions served, the TCP connections that carried at least one of
them (a client that keeps its connections open uses as many as it has requests in flight), and
the last chat completion body received (so a benchmark can replay rung's exact bytes with wrk or httpx).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

__all__ = ["InstantUpstreamDouble", "UpstreamStats", "completion_body"]

MODEL = "double"
_LOGPROBS_ASKED = re.compile(rb'"logprobs"\s*:\s*true')
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CONNECTION_CLOSE = re.compile(rb"\r\nconnection:\s*close", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.IGNORECASE)


def completion_body(label: str, logprobs: bool) -> dict[str, Any]:
    """The chat completion the double answers with: ``label`` as the whole answer."""
    content = None
    if logprobs:
        others = [("negative", -2.5), ("neutral", -3.0), ("Sure", -4.0)]
        top = [{"token": label, "logprob": -0.1, "bytes": None}]
        top += [{"token": t, "logprob": lp, "bytes": None} for t, lp in others if t != label]
        content = {
            "content": [{"token": label, "logprob": -0.1, "bytes": None, "top_logprobs": top}],
            "refusal": None,
        }
    return {
        "id": "chatcmpl-instant-double",
        "object": "chat.completion",
        "created": 0,
        "model": MODEL,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": label},
                "logprobs": content,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 40, "completion_tokens": 1, "total_tokens": 41},
    }


def _response(status: str, body: bytes) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode("ascii") + body


class _State:
    """What the server process shares between connections."""

    def __init__(self, label: str) -> None:
        self.plain = _response("200 OK", json.dumps(completion_body(label, False)).encode())
        self.scored = _response("200 OK", json.dumps(completion_body(label, True)).encode())
        models = {"object": "list", "data": [{"id": MODEL, "object": "model", "created": 0}]}
        self.models = _response("200 OK", json.dumps(models).encode())
        self.not_found = _response("404 Not Found", b'{"error": {"message": "not found"}}')
        self.bad = _response("400 Bad Request", b'{"error": {"message": "bad request"}}')
        self.completions = 0
        self.connections = 0
        self.last_body = b""

    def stats(self) -> bytes:
        return _response(
            "200 OK",
            json.dumps(
                {
                    "completions": self.completions,
                    "connections": self.connections,
                    "last_body": self.last_body.decode("utf-8", "replace"),
                }
            ).encode(),
        )


class _Connection(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.carried_completion = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        # Pipelined requests arrive in one read: answer every complete one, keep the rest.
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = bytes(self.buffer[: end + 2])
            found = _CONTENT_LENGTH.search(head)
            length = int(found.group(1)) if found else 0
            total = end + 4 + length
            if len(self.buffer) < total:
                return
            body = bytes(self.buffer[end + 4 : total])
            del self.buffer[:total]
            self._answer(head, body)

    def _answer(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        state = self.state
        line = head[: head.find(b"\r\n")]
        method, _, rest = line.partition(b" ")
        target = rest.partition(b" ")[0]
        if _CHUNKED.search(head):  # every client here sends Content-Length
            self.transport.write(state.bad)
            self.transport.close()
            return
        if method == b"POST" and target == b"/v1/chat/completions":
            state.completions += 1
            state.last_body = body
            if not self.carried_completion:
                self.carried_completion = True
                state.connections += 1
            asked = _LOGPROBS_ASKED.search(body) is not None
            self.transport.write(state.scored if asked else state.plain)
        elif method == b"GET" and target == b"/v1/models":
            self.transport.write(state.models)
        elif method == b"GET" and target == b"/stats":
            self.transport.write(state.stats())
        else:
            self.transport.write(state.not_found)
        if _CONNECTION_CLOSE.search(head):
            self.transport.close()


async def serve(port: int, label: str) -> None:
    state = _State(label)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: _Connection(state), "127.0.0.1", port, backlog=1024, reuse_address=True
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening {bound}", flush=True)
    async with server:
        await server.serve_forever()


@dataclass(frozen=True)
class UpstreamStats:
    completions: int
    connections: int
    last_body: str


class InstantUpstreamDouble:
    """Starts the double in its own Python process on a free port of 127.0.0.1; stops it on
    exit. ``base_url`` is the API root (``http://127.0.0.1:<port>/v1``)."""

    def __init__(self, label: str = "positive", startup_timeout_s: float = 10.0) -> None:
        self.label = label
        self.startup_timeout_s = startup_timeout_s
        self.port = 0
        self._proc: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def pid(self) -> int:
        assert self._proc is not None, "the double is not running"
        return self._proc.pid

    def __enter__(self) -> InstantUpstreamDouble:
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--port", "0", "--label", self.label],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._proc.stdout is not None
        # The child prints its port once bound; readline blocks until then (or until it dies).
        line = self._proc.stdout.readline()
        if not line.startswith("listening "):
            self._stop()
            raise RuntimeError(f"the upstream double did not start (it printed {line!r})")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if self._proc.stdout is not None:
            self._proc.stdout.close()
        self._proc = None

    def stats(self) -> UpstreamStats:
        data = httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()
        return UpstreamStats(data["completions"], data["connections"], data["last_body"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--label", default="positive", help="the answer of every completion")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.port, args.label))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
