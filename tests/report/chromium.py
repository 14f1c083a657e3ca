"""Open a local HTML file in headless Chromium and report what a person's browser would see.

Chromium is driven over the DevTools protocol through ``--remote-debugging-pipe`` (JSON
messages ending in NUL on file descriptors 3 and 4), which needs neither a websocket library
nor a port. Every uncaught exception (a syntax error included), every ``console.error`` and
every error the browser logs (a resource that failed to load) is collected in
``Page.errors``; every request for something that is not a local file is collected in
``Page.external_requests``.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

__all__ = ["CHROMIUM", "FLAGS", "Page", "open_page"]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)


class Page:
    """One tab of a fresh Chromium, talked to over the DevTools pipe."""

    def __init__(self, proc: subprocess.Popen[bytes], to_browser: int, from_browser: int):
        self._proc = proc
        self._out = to_browser
        self._messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._next_id = 0
        self._session: str | None = None
        self._loaded = False
        self.errors: list[str] = []
        self.external_requests: list[str] = []
        threading.Thread(target=self._read, args=(from_browser,), daemon=True).start()

    def _read(self, fd: int) -> None:
        buf = b""
        with os.fdopen(fd, "rb", buffering=0) as pipe:
            while chunk := pipe.read(1 << 16):
                buf += chunk
                *done, buf = buf.split(b"\0")
                for raw in done:
                    self._messages.put(json.loads(raw))
        self._messages.put(None)  # the browser went away

    def _event(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.exceptionThrown":
            d = params["exceptionDetails"]
            what = (d.get("exception") or {}).get("description") or d.get("text", "")
            self.errors.append(f"uncaught: {what} (line {d.get('lineNumber', 0) + 1})")
        elif method == "Runtime.consoleAPICalled" and params.get("type") == "error":
            args = [a.get("value", a.get("description", "")) for a in params.get("args", [])]
            self.errors.append("console.error: " + " ".join(map(str, args)))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.errors.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file:", "data:", "blob:", "about:")):
                self.external_requests.append(url)
        elif method == "Page.loadEventFired":
            self._loaded = True

    def _wait(self, until: float, done: Any) -> dict[str, Any] | None:
        """Handle messages until ``done(msg)`` holds for one (returned) or ``until`` passes."""
        while True:
            left = until - time.monotonic()
            if left <= 0:
                return None
            try:
                msg = self._messages.get(timeout=left)
            except queue.Empty:
                return None
            if msg is None:
                raise RuntimeError(f"chromium exited (code {self._proc.poll()})")
            if "method" in msg:
                self._event(msg)
            if done(msg):
                return msg

    def send(self, method: str, params: dict[str, Any] | None = None, timeout: float = 30) -> Any:
        self._next_id += 1
        msg: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if self._session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self._session
        os.write(self._out, json.dumps(msg).encode() + b"\0")
        wanted = self._next_id
        reply = self._wait(time.monotonic() + timeout, lambda m: m.get("id") == wanted)
        if reply is None:
            raise TimeoutError(f"chromium did not answer {method} within {timeout} s")
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def attach(self, width: int, height: int) -> None:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")
        self.resize(width, height)

    def resize(self, width: int, height: int) -> None:
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )

    def goto(self, path: Path, timeout: float = 60) -> None:
        self._loaded = False
        self.send("Page.navigate", {"url": path.resolve().as_uri()})
        if not self._loaded:
            self._wait(time.monotonic() + timeout, lambda m: self._loaded)
        if not self._loaded:
            raise TimeoutError(f"{path} did not finish loading within {timeout} s")
        self.settle(0.3)

    def settle(self, seconds: float) -> None:
        """Let timers and events due in the next ``seconds`` run (and their errors arrive)."""
        self._wait(time.monotonic() + seconds, lambda m: False)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of ``expression`` in the page (promises awaited)."""
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path, full_page: bool = True, max_height: int = 16000) -> Path:
        if full_page:
            height = int(self.evaluate("document.documentElement.scrollHeight"))
            width = int(self.evaluate("window.innerWidth"))
            self.resize(width, min(height, max_height))
            self.settle(0.5)  # responsive plots redraw on resize
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path


@contextmanager
def open_page(path: Path, width: int = 1280, height: int = 4000) -> Iterator[Page]:
    """A fresh headless Chromium (its own temporary profile) showing ``path``."""
    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed: apt-get install -y chromium")
    profile = tempfile.mkdtemp(prefix="rung-chromium-")
    to_r, to_w = os.pipe()
    from_r, from_w = os.pipe()
    # Chromium reads commands on fd 3 and writes replies on fd 4. The child's ends are first
    # moved above 9 so that placing them on 3 and 4 cannot overwrite one another.
    child_r, child_w = (fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_r, from_w))
    for fd in (to_r, from_w):
        os.close(fd)
    redirect = f'exec "$0" "$@" 3<&{child_r} 4>&{child_w} {child_r}<&- {child_w}>&-'
    proc = subprocess.Popen(
        ["bash", "-c", redirect, CHROMIUM, *FLAGS, f"--user-data-dir={profile}"],
        pass_fds=(child_r, child_w),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(child_r)
    os.close(child_w)
    page = Page(proc, to_w, from_r)
    try:
        page.attach(width, height)
        page.goto(path)
        yield page
    finally:
        with suppress(RuntimeError, TimeoutError, OSError):  # it is killed below either way
            page.send("Browser.close", timeout=5)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        os.close(to_w)
        shutil.rmtree(profile, ignore_errors=True)
