"""The label grammar: a GBNF grammar whose alternatives are the labels, and the step of
constrained decoding that picks the most likely token it accepts."""

from __future__ import annotations

import ctypes
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["gbnf_for_labels", "grammar_pick"]

_GBNF_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _gbnf_literal(text: str) -> str:
    def escape(ch: str) -> str:
        if ch in _GBNF_ESCAPES:
            return _GBNF_ESCAPES[ch]
        return f"\\x{ord(ch):02X}" if ord(ch) < 0x20 or ord(ch) == 0x7F else ch

    return '"' + "".join(escape(ch) for ch in text) + '"'


def gbnf_for_labels(labels: Sequence[str], prefix: str = "") -> str:
    """A GBNF grammar accepting exactly ``prefix + label`` for one of the labels."""
    alternatives = " | ".join(_gbnf_literal(label) for label in labels)
    head = f"{_gbnf_literal(prefix)} " if prefix else ""
    return f"root ::= {head}({alternatives})\n"


def grammar_pick(
    llama_cpp: Any, sampler: Any, candidates: list[int], logprobs: npt.NDArray[np.float32]
) -> int | None:
    """The most likely candidate the grammar accepts, or None."""
    if not candidates:
        return None
    data = (llama_cpp.llama_token_data * len(candidates))()
    for slot, token in zip(data, candidates, strict=True):
        slot.id, slot.logit, slot.p = token, float(logprobs[token]), 0.0
    array = llama_cpp.llama_token_data_array(data, len(candidates), -1, False)
    llama_cpp.llama_sampler_apply(sampler, ctypes.byref(array))
    allowed = [(slot.logit, slot.id) for slot in data[: array.size] if slot.logit > -math.inf]
    return max(allowed)[1] if allowed else None
