"""How a run is scored: the validation score that early stopping watches (keeping the weights of
the best one through a save callback), and the final figures with 95% intervals."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from rung.tasks.metrics import accuracy, bootstrap_ci, macro_f1
from rung.tune.encoder.options import TuneOptions
from rung.tune.encoder.progress import TuneProgress
from rung.tune.encoder.splits import Split

__all__ = ["EarlyStopping", "metrics_with_ci", "score"]


def metrics_with_ci(
    split: Split, pred: list[str], labels: Sequence[str], seed: int
) -> dict[str, Any]:
    acc = bootstrap_ci(split.labels, pred, labels, "accuracy", seed=seed)
    f1 = bootstrap_ci(split.labels, pred, labels, "macro_f1", seed=seed)
    return {
        "accuracy": acc.value,
        "accuracy_ci": list(acc.ci95),
        "macro_f1": f1.value,
        "macro_f1_ci": list(f1.ci95),
        "n": len(split),
    }


def score(split: Split, pred: list[str], labels: Sequence[str]) -> dict[str, float]:
    return {
        "accuracy": accuracy(split.labels, pred, labels),
        "macro_f1": macro_f1(split.labels, pred, labels),
    }


class EarlyStopping:
    """Keeps the best validation score, saves the weights it came with, and says when
    ``patience`` evaluations in a row brought nothing better."""

    def __init__(
        self, options: TuneOptions, save: Callable[[], None], progress: TuneProgress
    ) -> None:
        self.metric = options.metric
        self.patience = options.patience
        self.save = save
        self.progress = progress
        self.best = -math.inf
        self.best_epoch = 0.0
        self.stale = 0
        self.history: list[dict[str, Any]] = []
        self.last_was_best = False

    def update(self, epoch: float, step: int, loss: float, scores: dict[str, float]) -> bool:
        """Record one evaluation; True when training should stop."""
        value = scores[self.metric]
        self.history.append(
            {"epoch": epoch, "step": step, "train_loss": round(loss, 5), "validation": scores}
        )
        self.progress.evaluated(epoch, value)
        self.last_was_best = value > self.best
        if self.last_was_best:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            self.save()
            return False
        self.stale += 1
        return 0 < self.patience <= self.stale
