"""The cascade's decision for one answer: keep it, or climb to the next rung.

One pure function, shared by the cascade model that serves requests and by ``route calibrate``
and ``route simulate`` that replay a run, so the thresholds a calibration picks mean exactly
what the server does with them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["Decision", "Policy", "decide"]

Decision = Literal["answer", "climb"]


def decide(confidence: float | None, threshold: float | None) -> Decision:
    """``answer`` when the rung is sure enough (confidence at or above its threshold), else
    ``climb``. The last rung has no threshold and always answers. A rung that cannot tell its
    confidence (None, or NaN) counts as unsure: keeping an answer of unknown quality would
    defeat the point of the cascade."""
    if threshold is None:
        return "answer"
    if confidence is None or math.isnan(confidence):
        return "climb"
    return "answer" if confidence >= threshold else "climb"


@dataclass(frozen=True)
class Policy:
    """A cascade as data: rung names from small to large and each rung's threshold (None for
    the last rung, which answers whatever reaches it)."""

    rungs: tuple[str, ...]
    thresholds: tuple[float | None, ...]

    def __post_init__(self) -> None:
        if not self.rungs or len(self.rungs) != len(self.thresholds):
            raise ValueError("a policy lists one or more rungs and one threshold per rung")
        if self.thresholds[-1] is not None or any(t is None for t in self.thresholds[:-1]):
            raise ValueError("every rung but the last has a threshold; the last has none")

    def answering_rung(self, confidences: tuple[float | None, ...]) -> int:
        """The index of the rung that keeps its answer, given each rung's confidence."""
        for k, (conf, threshold) in enumerate(zip(confidences, self.thresholds, strict=True)):
            if decide(conf, threshold) == "answer":
                return k
        raise AssertionError("the last rung always answers")  # pragma: no cover

    def to_json(self) -> dict[str, Any]:
        return {
            "rungs": [
                {"rung": r, "threshold": t}
                for r, t in zip(self.rungs, self.thresholds, strict=True)
            ]
        }

    def describe(self) -> str:
        parts = [
            f"{r} (≥ {t:.3f})" if t is not None else r
            for r, t in zip(self.rungs, self.thresholds, strict=True)
        ]
        return " → ".join(parts)
