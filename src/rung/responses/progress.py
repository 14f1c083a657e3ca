"""What the code that asks rungs reports while it works; the CLI draws it with Rich."""

from __future__ import annotations

from typing import Protocol

__all__ = ["Progress", "SilentProgress"]


class Progress(Protocol):
    """Per rung, by its label: started (with how many answers the cache already had), a step
    ("loading", "training on 600 examples"), answers made, finished or failed."""

    def rung_started(self, label: str, total: int, cached: int) -> None: ...
    def step(self, label: str, message: str) -> None: ...
    def advance(self, label: str, n: int) -> None: ...
    def rung_finished(self, label: str) -> None: ...
    def rung_failed(self, label: str, message: str) -> None: ...


class SilentProgress:
    def rung_started(self, label: str, total: int, cached: int) -> None:
        pass

    def step(self, label: str, message: str) -> None:
        pass

    def advance(self, label: str, n: int) -> None:
        pass

    def rung_finished(self, label: str) -> None:
        pass

    def rung_failed(self, label: str, message: str) -> None:
        pass
