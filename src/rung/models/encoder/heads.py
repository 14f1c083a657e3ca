"""The arithmetic of classifier heads, shared by the encoder backend and ``rung tune``'s
evaluation, so that the accuracy a tuned folder records is the accuracy ``encoder:<folder>``
gets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, cast

from rung.models.base import softmax

if TYPE_CHECKING:
    import numpy as np
    import torch
    from numpy.typing import NDArray

__all__ = ["head_probabilities", "mean_pool", "sequence_probabilities"]


def sequence_probabilities(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int
) -> tuple[NDArray[np.float64], list[int]]:
    """Softmax over a sequence classifier's logits, and the tokens read per text. Shared by the
    ``encoder`` backend and ``rung tune``'s evaluation, so that the accuracy a tuned folder
    records is the accuracy ``encoder:<folder>`` gets."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    probs: list[NDArray[np.float64]] = []
    tokens: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            logits = model(**batch).logits
            # float64 softmax: the scores sum to 1 to within 1e-12, as the logreg head's do
            probs.append(logits.double().softmax(dim=-1).cpu().numpy())
            tokens.extend(int(n) for n in batch["attention_mask"].sum(dim=1).tolist())
    if not probs:
        return np.zeros((0, 0), dtype=np.float64), []
    return np.concatenate(probs), tokens


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token states over the real tokens (padding left out): the sentence
    embedding of sentence-transformers' mean pooling."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def head_probabilities(
    features: NDArray[np.float64], coef: NDArray[np.float64], intercept: NDArray[np.float64]
) -> NDArray[np.float64]:
    """A multinomial logistic regression's probabilities: softmax(features @ coef.T + b)."""

    return cast("NDArray[np.float64]", softmax(features @ coef.T + intercept))
