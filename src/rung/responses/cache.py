"""The response cache: one SQLite file of answers keyed by model, prompt and parameters.

Every answer is committed the moment it arrives (WAL journal, one transaction per answer), so
a run stopped by Ctrl-C or ``kill -9`` loses at most the answer in flight, and running it again
asks the rungs only for what is missing. Keys are content hashes, so the same request is stored
once however many runs ask it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from rung.config import cache_dir
from rung.models.base import ClassifyRequest, stable_hash

__all__ = ["ResponseCache", "open_cache", "request_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS facts (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def request_key(model_fingerprint: str, request: ClassifyRequest) -> str:
    return stable_hash(
        {
            "model": model_fingerprint,
            "kind": "classify",
            "text": request.text,
            "labels": list(request.labels),
            "messages": [[m.role, m.content] for m in request.messages],
        }
    )


def open_cache(use_cache: bool = True) -> ResponseCache | None:
    """The response cache of this machine (``rung.config.cache_dir``), or None with --no-cache."""
    return ResponseCache(cache_dir() / "responses.sqlite") if use_cache else None


class ResponseCache:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        # One connection shared by the runner's event loop and its worker threads; the lock
        # keeps SQLite calls serialized, which they would be anyway with one writer.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)

    def get_many(self, keys: list[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, value FROM answers WHERE key IN ({marks})", chunk
                )
                for key, value in rows:
                    found[key] = json.loads(value)
        return found

    def put(self, key: str, model: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO answers (key, model, value, created) VALUES (?, ?, ?, ?)",
                (key, model, json.dumps(value, ensure_ascii=False), time.time()),
            )

    def get_fact(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute("SELECT value FROM facts WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def put_fact(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO facts (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )

    def close(self) -> None:
        with self._lock:
            self._conn.close()
