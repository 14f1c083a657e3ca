"""What a LoRA run reports while it works: a few small callbacks, no display code."""

from __future__ import annotations

from typing import Protocol

__all__ = ["LoraProgress", "NullLoraProgress"]


class LoraProgress(Protocol):
    """Callbacks from ``tune_lora``, called in the thread that trains."""

    def phase(self, text: str) -> None:
        """A stage begins (loading the base, saving, exporting GGUF)."""

    def start(self, total_steps: int) -> None:
        """Training begins; ``total_steps`` optimizer steps are planned (early stopping may end
        the run sooner)."""

    def step(self, loss: float) -> None:
        """One optimizer step was taken; ``loss`` is that batch's loss on the completions."""

    def evaluated(self, epoch: float, val_loss: float) -> None:
        """The validation examples were scored after ``epoch`` epochs."""

    def done(self) -> None:
        """Training ended (finished, stopped early or failed)."""


class NullLoraProgress:
    """Reports nothing."""

    def phase(self, text: str) -> None:
        pass

    def start(self, total_steps: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def evaluated(self, epoch: float, val_loss: float) -> None:
        pass

    def done(self) -> None:
        pass
