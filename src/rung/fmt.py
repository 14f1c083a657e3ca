"""Figures as people read them: sizes, money, durations and shares, for the advice sentences,
the reports and the CLI alike.

A figure that is not known reads as ``unknown`` by default; tables pass their own placeholder
(``"?"``) so that a column of numbers stays narrow.
"""

from __future__ import annotations

import math

__all__ = ["bytes_", "ms", "params", "pct", "points", "usd"]


def params(n: int | None, unknown: str = "unknown size") -> str:
    """A parameter count: 23M, 1.5B."""
    if n is None:
        return unknown
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.0f}{unit}" if n >= 10 * size else f"{n / size:.1f}{unit}"
    return str(n)


def bytes_(n: float | None, unknown: str = "unknown") -> str:
    """A size in binary units: 86.7 MB."""
    if n is None:
        return unknown
    value = float(abs(n))
    sign = "-" if n < 0 else ""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return (
                f"{sign}{value:.0f} {unit}" if unit in ("B", "KB") else f"{sign}{value:.1f} {unit}"
            )
        value /= 1024
    return f"{n} B"  # pragma: no cover


def usd(x: float | None) -> str:
    if x is None:
        return "unknown"
    if x == 0:
        return "$0"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 0.1:
        return f"${x:.2f}"
    # Small amounts keep two significant digits: $0.019, $0.0005.
    digits = max(2, 1 - math.floor(math.log10(abs(x))))
    return f"${x:.{digits}f}".rstrip("0")


def ms(x: float | None) -> str:
    return "unknown" if x is None else f"{x:.0f} ms" if x >= 10 else f"{x:.1f} ms"


def points(x: float) -> str:
    """A difference of two fractions as percentage points."""
    return f"{abs(x) * 100:.1f} point{'' if round(abs(x) * 100, 1) == 1 else 's'}"


def pct(x: float) -> str:
    """A share as a percentage; never rounded up to 100% or down to 0% when it is not."""
    if 0.995 <= x < 1 or 0 < x < 0.005:
        return f"{x * 100:.1f}%"
    return f"{x * 100:.0f}%"
