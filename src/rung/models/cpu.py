"""What the CPU says it can do, read from ``/proc/cpuinfo``.

Native backends pick code paths by CPU feature, and some paths are broken on some CPUs:
llama.cpp's AMX weight repacking crashes the process on Sapphire Rapids class Xeons (see
``rung.models.llamacpp.use_extra_buffers``). Every such decision reads the flags through
``cpu_flags`` so that a test can point it at a fixture file (``$RUNG_CPUINFO``) and check the
decision a machine with other flags would take.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["CPUINFO_ENV", "cpu_flags", "has_amx"]

#: a file read instead of /proc/cpuinfo (tests; a container that hides the host's flags)
CPUINFO_ENV = "RUNG_CPUINFO"
PROC_CPUINFO = Path("/proc/cpuinfo")


def cpu_flags(cpuinfo: Path | None = None) -> frozenset[str]:
    """The feature flags of the first CPU in ``cpuinfo`` (default: ``$RUNG_CPUINFO``, else
    /proc/cpuinfo): x86's ``flags`` line, or ARM's ``Features``. Empty when the file cannot be
    read (not Linux): no flag is then assumed."""
    path = cpuinfo or Path(os.environ.get(CPUINFO_ENV) or PROC_CPUINFO)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            return frozenset(value.split())
    return frozenset()


def has_amx(flags: frozenset[str] | None = None) -> bool:
    """Whether the CPU reports Intel AMX (``amx_tile``, ``amx_int8``, ``amx_bf16``, ...)."""
    return any(f.startswith("amx") for f in (cpu_flags() if flags is None else flags))
