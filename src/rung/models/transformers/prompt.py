"""The prompt as the model sees it: its chat template when the tokenizer has one, else a plain
``Text: ... Answer:`` format; and how a label continues it, tokenised in context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rung.errors import ModelLoadError
from rung.models.base import ChatMessage
from rung.models.completion import render_completion

__all__ = ["Prompt", "render_prompt"]


def render_prompt(tokenizer: Any, messages: Sequence[ChatMessage], model_id: str) -> Prompt:
    """The prompt as the model sees it: its chat template when the tokenizer has one, else the
    plain format. Training (``rung tune-lm``) renders its examples with this same function, so a
    tuned model is prompted at serving time exactly as it was trained."""
    if not getattr(tokenizer, "chat_template", None):
        return Prompt(render_completion(messages), prefix=" ", special=True, tokenizer=tokenizer)
    from jinja2 import TemplateError

    turns = [{"role": m.role, "content": m.content} for m in messages]
    try:
        text = tokenizer.apply_chat_template(turns, add_generation_prompt=True, tokenize=False)
    except TemplateError as e:
        # Some templates (older Mistral, Gemma 2) refuse a system turn: fold it into the
        # first user turn, as their own documentation advises.
        if len(turns) < 2 or turns[0]["role"] != "system":
            raise ModelLoadError(
                f"the chat template of {model_id} cannot render the prompt: {e}"
            ) from e
        system, first = turns[0], turns[1]
        merged = {
            "role": first["role"],
            "content": f"{system['content']}\n\n{first['content']}",
        }
        text = tokenizer.apply_chat_template(
            [merged, *turns[2:]], add_generation_prompt=True, tokenize=False
        )
    # The template writes the special tokens (BOS included) itself.
    return Prompt(text, prefix="", special=False, tokenizer=tokenizer)


class Prompt:
    """A rendered prompt, its token ids, and how a label continues it: ``prefix`` is '' after a
    chat template's assistant header and ' ' after the plain prompt's 'Answer:'."""

    def __init__(self, text: str, *, prefix: str, special: bool, tokenizer: Any) -> None:
        self.text, self.prefix, self.special, self._tok = text, prefix, special, tokenizer
        self.ids: list[int] = self._encode(text, special)

    def _encode(self, text: str, special: bool) -> list[int]:
        return list(self._tok(text, add_special_tokens=special)["input_ids"])

    def continuation(self, label: str) -> list[int]:
        """The label's tokens as they follow this prompt: tokenised in context, so that a
        merge across the boundary is what the model would see, else on their own."""
        joined = self._encode(self.text + self.prefix + label, self.special)
        n = len(self.ids)
        if joined[:n] == self.ids and len(joined) > n:
            return joined[n:]
        return self._encode(self.prefix + label, False)
