"""How an example becomes a training sequence: the prompt rendered as the transformers backend
renders it when serving, the completion as the chat template writes an assistant turn, the
prompt's labels masked out of the loss, long examples cut in the input text, never in the
template's markup; and right-padded batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rung.models.base import ChatMessage
from rung.models.transformers import render_prompt
from rung.tune.lm.data import TrainExample

__all__ = ["Encoded", "collate", "encode"]


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    n_prompt: int  # the first n_prompt tokens are masked out of the loss
    truncated: bool


def _completion_text(tok: Any, example: TrainExample, prompt_text: str, prefix: str) -> str:
    """What follows the prompt in a rendered conversation: the answer and the template's
    end-of-turn markup. Without a chat template (or when the template renders the finished
    turn differently), the answer and the end-of-sequence token."""
    fallback = prefix + example.completion + (tok.eos_token or "")
    if not getattr(tok, "chat_template", None):
        return fallback
    from jinja2 import TemplateError

    turns = [{"role": m.role, "content": m.content} for m in example.messages]
    answer = {"role": "assistant", "content": example.completion}
    candidates = [turns]
    if len(turns) >= 2 and turns[0]["role"] == "system":  # as render_prompt folds it
        first = {
            "role": turns[1]["role"],
            "content": f"{turns[0]['content']}\n\n{turns[1]['content']}",
        }
        candidates.append([first, *turns[2:]])
    for candidate in candidates:
        try:
            full = tok.apply_chat_template([*candidate, answer], tokenize=False)
        except TemplateError:
            continue
        if isinstance(full, str) and full.startswith(prompt_text) and len(full) > len(prompt_text):
            return full[len(prompt_text) :]
    return fallback


def encode(tok: Any, example: TrainExample, max_length: int, model_id: str) -> Encoded:
    prompt = render_prompt(tok, example.messages, model_id)
    tail = _completion_text(tok, example, prompt.text, prompt.prefix)
    completion = list(tok(tail, add_special_tokens=False)["input_ids"])
    prompt_ids = prompt.ids
    if len(prompt_ids) + len(completion) <= max_length:
        return Encoded(prompt_ids + completion, len(prompt_ids), False)
    completion = completion[: max(max_length - len(prompt_ids), max_length // 2)]
    budget = max_length - len(completion)
    prompt_ids = _shorten_prompt(tok, example, budget, model_id) or prompt_ids[-budget:]
    return Encoded(prompt_ids + completion, len(prompt_ids), True)


def _shorten_prompt(
    tok: Any, example: TrainExample, budget: int, model_id: str
) -> list[int] | None:
    """The prompt's ids with its last user message cut at the end until it fits ``budget``
    tokens; None when cutting that message is not enough."""
    messages = list(example.messages)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return None
    at = users[-1]
    content_ids = list(tok(messages[at].content, add_special_tokens=False)["input_ids"])
    keep = len(content_ids)
    for _ in range(4):  # decoding then re-encoding a cut text can shift a token or two
        ids = render_prompt(tok, messages, model_id).ids
        over = len(ids) - budget
        if over <= 0:
            return ids
        keep -= over + 2
        if keep <= 0:
            return None
        messages[at] = ChatMessage("user", tok.decode(content_ids[:keep]))
    ids = render_prompt(tok, messages, model_id).ids
    return ids if len(ids) <= budget else None


def collate(batch: Sequence[Encoded], pad_id: int, device: str) -> dict[str, Any]:
    """Right-padded ids, attention mask, and labels that are -100 on the prompt and padding."""
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        mask[row, :n] = 1
        labels[row, e.n_prompt : n] = torch.tensor(e.ids[e.n_prompt :])
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "labels": labels.to(device),
    }
