"""The llama context's KV cache, shared between consecutive calls: logits of the last decode,
rewinding to a prefix, evaluating a prompt on top of the prefix already cached, and evaluating
a continuation with logits at every position, then forgetting it.

These reach into llama-cpp-python's private ``_ctx`` and ``_batch`` (there is no public API for
it in llama-cpp-python 0.3), and keep its bookkeeping (``n_tokens``, ``input_ids``) consistent
for its own prefix reuse in ``generate``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["eval_continuation", "eval_prompt", "logits", "rewind"]


def logits(llm: Llama, index: int = -1) -> npt.NDArray[np.float32]:
    """A copy of the logits of one output of the last decode (-1: its last)."""
    n_vocab = llm.n_vocab()
    return np.ctypeslib.as_array(llm._ctx.get_logits_ith(index), shape=(n_vocab,)).copy()


def rewind(llm: Llama, n: int) -> None:
    """Bring the KV cache back to its first n tokens. A recurrent model (Mamba, RWKV) cannot
    drop a suffix of its state: it evaluates the n tokens again instead."""
    if n >= llm.n_tokens:
        return
    if llm._ctx.kv_cache_seq_rm(-1, n, -1):
        llm.n_tokens = n
        return
    kept = llm.input_ids[:n].tolist()
    llm.reset()
    if kept:
        llm.eval(kept)


def eval_prompt(llm: Llama, tokens: list[int]) -> None:
    """Evaluate the prompt, reusing the longest prefix already in the KV cache."""
    cached = llm.input_ids[: llm.n_tokens]
    m = min(len(cached), len(tokens) - 1)  # the last token is always evaluated: its logits
    same = cached[:m] == np.asarray(tokens[:m], dtype=cached.dtype)
    common = int(m if same.all() else np.argmin(same))
    rewind(llm, common)
    llm.eval(tokens[llm.n_tokens :])


def eval_continuation(
    llm: Llama,
    n_prompt: int,
    tokens: tuple[int, ...],
    row: Callable[[tuple[int, ...], npt.NDArray[np.float32]], None],
) -> None:
    """Evaluate tokens after the prompt with logits at every position (``row(prefix, logits)``
    for each prefix of ``tokens``), then forget them."""
    rewind(llm, n_prompt)
    n_past = n_prompt
    batch = llm._batch
    for start in range(0, len(tokens), llm.n_batch):
        chunk = list(tokens[start : start + llm.n_batch])
        batch.set_batch(batch=chunk, n_past=n_past, logits_all=True)
        llm._ctx.decode(batch)
        for i in range(len(chunk)):
            row(tokens[: start + i + 1], logits(llm, i))
        n_past += len(chunk)
    # Record the tokens in llama-cpp-python's bookkeeping, then rewind through it: the KV
    # cache drops them (or a recurrent model replays the prompt).
    llm.n_tokens = n_past
    llm.input_ids[n_prompt:n_past] = tokens
    rewind(llm, n_prompt)
