"""What the two training methods (``full``, ``setfit``) share: ``Trained``, what a method hands
back to the run, and the AdamW optimizer with its warmup-then-decay schedule."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rung.tune.encoder.options import TuneOptions

__all__ = ["Trained", "optimizer_for"]


@dataclass
class Trained:
    """What a method hands back: how to label texts with the best weights, and how to write
    them into the model folder."""

    predict: Callable[[Sequence[str]], list[str]]
    save: Callable[[Path], None]
    best_epoch: float
    history: list[dict[str, Any]] = field(default_factory=list)
    card_extra: dict[str, Any] = field(default_factory=dict)


def optimizer_for(
    model: Any, options: TuneOptions, total_steps: int, fast: str | None = None
) -> tuple[Any, Any]:
    """AdamW without decay on biases and norms, and a linear warmup then decay to zero. Weights
    whose name starts with ``fast`` (the head) learn ``head_speed`` times faster."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    groups: dict[tuple[bool, bool], list[Any]] = defaultdict(list)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        plain = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups[(plain, fast is not None and name.startswith(fast))].append(param)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": 0.0 if plain else options.weight_decay,
                "lr": options.lr * (options.head_speed if is_head else 1.0),
            }
            for (plain, is_head), params in sorted(groups.items())
        ],
        lr=options.lr,
    )
    warmup = int(options.warmup_ratio * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)
