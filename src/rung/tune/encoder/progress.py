"""What a fine-tuning run reports while it trains: a few small callbacks, no display code."""

from __future__ import annotations

from typing import Protocol

__all__ = ["NullProgress", "TuneProgress"]


class TuneProgress(Protocol):
    """Callbacks from ``tune_classifier``, called in the thread that trains."""

    def start(self, total_steps: int) -> None:
        """Training begins; ``total_steps`` optimizer steps are planned (early stopping may end
        the run sooner)."""

    def step(self, loss: float) -> None:
        """One optimizer step was taken; ``loss`` is that batch's training loss."""

    def evaluated(self, epoch: float, score: float) -> None:
        """The validation split was scored after ``epoch`` epochs (fractional when evaluating
        every N steps); ``score`` is the early-stopping metric (macro-F1 or accuracy)."""

    def done(self) -> None:
        """Training ended (finished, stopped early or failed)."""


class NullProgress:
    """Reports nothing."""

    def start(self, total_steps: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def evaluated(self, epoch: float, score: float) -> None:
        pass

    def done(self) -> None:
        pass
