"""Classification by teacher forcing: every label scored as a continuation of the prompt.

One forward pass over the prompt gives each label's first token; labels of several tokens are
continued together, in one batched pass over the prompt's key/value cache. The label
log-probabilities are normalised over the labels, so the argmax is the constrained answer: the
most probable label. The prompts of one task share a long prefix (the instructions, the
few-shot turns), so the cache of the previous prompt is cut back to the prefix both share and
only the rest is run.
"""

from __future__ import annotations

import copy
import inspect
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

__all__ = ["MIN_PREFIX_REUSE", "Scorer", "label_distribution"]

#: shared prompt prefix, in tokens, below which reusing the previous prompt's cache is not worth
#: copying it
MIN_PREFIX_REUSE = 8


def label_distribution(logprobs: dict[str, float]) -> dict[str, float]:
    """Softmax over the labels' sequence log-probabilities: probabilities that sum to 1."""
    top = max(logprobs.values())
    weights = {label: math.exp(lp - top) for label, lp in logprobs.items()}
    total = sum(weights.values())
    return {label: w / total for label, w in weights.items()}


class Scorer:
    """Label log-probabilities on one loaded model, holding the last prompt's KV cache."""

    def __init__(self, model: Any, device: str) -> None:
        self.model = model
        self.device = device
        #: the last prompt's ids and key/value cache, reused for the prefix the next one shares
        self.prefix: tuple[list[int], Any] | None = None
        params = inspect.signature(model.forward).parameters
        #: the forward() keyword for the cache: ``cache`` in transformers 5.x, else the old name
        self.cache_arg = "cache" if "cache" in params else "past_key_values"
        #: the forward() keyword that computes the vocabulary logits of the last position only
        self.keep_last: dict[str, int] = {}
        for keep in ("logits_to_keep", "num_logits_to_keep"):
            if keep in params:
                self.keep_last = {keep: 1}
                break

    def sequence_logprobs(self, prompt_ids: list[int], label_ids: list[list[int]]) -> list[float]:
        """log P(label tokens | prompt) for each label: one pass over the prompt, then, when a
        label has more than one token, one batched pass over a copy of the prompt's cache."""
        import torch

        model = self.model
        first, cache = self.prompt_pass(prompt_ids)
        totals = [float(first[ids[0]]) for ids in label_ids]
        longest = max(len(ids) for ids in label_ids)
        if longest == 1:
            return totals
        # Feed every label but its last token; right padding is harmless under a causal mask,
        # and the padded positions' outputs are never read.
        n = len(label_ids)
        cont = torch.zeros((n, longest - 1), dtype=torch.long, device=self.device)
        for i, ids in enumerate(label_ids):
            if len(ids) > 1:
                cont[i, : len(ids) - 1] = torch.tensor(ids[:-1], device=self.device)
        if cache is not None and hasattr(cache, "batch_repeat_interleave"):
            cache = copy.deepcopy(cache)  # the original stays the prefix cache of the next call
            cache.batch_repeat_interleave(n)
            logits = model(input_ids=cont, use_cache=True, **{self.cache_arg: cache}).logits
        else:  # a model without a reusable cache: run prompt and label together
            prompt = torch.tensor([prompt_ids], device=self.device).expand(n, -1)
            full = torch.cat([prompt, cont], dim=1)
            logits = model(input_ids=full, use_cache=False).logits[:, len(prompt_ids) :]
        steps = torch.log_softmax(logits.float(), dim=-1)
        for i, ids in enumerate(label_ids):
            for j in range(1, len(ids)):
                totals[i] += float(steps[i, j - 1, ids[j]])
        return totals

    def prompt_pass(self, prompt_ids: list[int]) -> tuple[torch.Tensor, Any]:
        """Log-probabilities of the token after the prompt, and the prompt's key/value cache.

        The prompts of one task share a long prefix (the instructions, the few-shot turns), so
        the cache of the previous prompt is cut back to the prefix both share and only the rest
        is run: on CPU this is most of the cost of a short text."""
        import torch

        model = self.model
        reused, cache = 0, None
        if self.prefix is not None:
            last_ids, last_cache = self.prefix
            shared = 0
            for a, b in zip(last_ids, prompt_ids, strict=False):
                if a != b:
                    break
                shared += 1
            shared = min(shared, len(prompt_ids) - 1)  # run one token at least, for its logits
            if shared >= MIN_PREFIX_REUSE:
                cache = cropped_copy(last_cache, shared)
                reused = shared if cache is not None else 0
        kwargs: dict[str, Any] = {"use_cache": True, **self.keep_last}
        if cache is not None:
            kwargs[self.cache_arg] = cache
        ids = torch.tensor([prompt_ids[reused:]], device=self.device)
        out = model(input_ids=ids, **kwargs)
        new_cache = out.get(self.cache_arg)
        self.prefix = (prompt_ids, new_cache) if new_cache is not None else None
        return torch.log_softmax(out.logits[0, -1].float(), dim=-1), new_cache


def cropped_copy(cache: Any, length: int) -> Any:
    """A copy of ``cache`` holding its first ``length`` tokens, or None when this cache cannot
    be cut back (sliding-window layers past their window, recurrent states)."""
    if not getattr(cache, "is_croppable", True) or not hasattr(cache, "crop"):
        return None
    cut = copy.deepcopy(cache)
    try:
        # A negative count removes that many tokens, in transformers 4.x and 5.x alike.
        cut.crop(-(cut.get_seq_length() - length))
    except (ValueError, RuntimeError, TypeError):
        return None
    return cut if cut.get_seq_length() == length else None
