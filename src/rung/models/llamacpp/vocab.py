"""Tokens of the loaded model's vocabulary: their bytes, and which of them end a generation."""

from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["end_tokens", "piece"]


def piece(llm: Llama, token: int) -> bytes:
    """A token's bytes (llama-cpp-python's detokenize asserts on pieces over 32 bytes)."""
    import llama_cpp

    size = 64
    while True:
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_token_to_piece(llm._model.vocab, token, buf, size, 0, False)
        if n >= 0:
            return buf.raw[:n]
        size = -n


def end_tokens(llm: Llama) -> tuple[int, ...]:
    """Every end-of-generation token of the vocabulary (a scan of it: cache the result)."""
    import llama_cpp

    vocab = llm._model.vocab
    return tuple(t for t in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t))
