"""The few-shot completion prompt given to base models (models without a chat template) when
they label a text: the instructions, then each example as ``Text: ...`` / ``Answer: label``,
ending where the answer goes, so that the label is the prompt's plain continuation.

A base model has seen text laid out like this far more often than a chat transcript, and
scores labels as continuations better: on the demo's financial news, gemma-3-270m with four
examples per label went from 0.70 (a ``User:``/``Assistant:`` transcript) to 0.85 accuracy
(both calibrated). The llamacpp and transformers backends render it the same way, and
``rung tune-lm`` trains on it, so a tuned base model is asked as it was trained.
"""

from __future__ import annotations

from collections.abc import Sequence

from rung.models.base import ChatMessage

__all__ = ["ANSWER_CUE", "render_completion"]

#: what the label follows, after one space
ANSWER_CUE = "Answer:"


def render_completion(messages: Sequence[ChatMessage]) -> str:
    """The system text, then each user turn as ``Text: ...`` followed by the answer cue and,
    for earlier turns, the assistant's answer after a space."""
    parts: list[str] = []
    for m in messages:
        if m.role == "system":
            parts.append(f"{m.content}\n\n")
        elif m.role == "user":
            parts.append(f"Text: {m.content}\n{ANSWER_CUE}")
        else:
            parts.append(f" {m.content}\n\n")
    return "".join(parts)
