"""Classification: one evaluation of the prompt gives both the answer and every label's score.

* the answer: greedy decoding constrained by a GBNF grammar whose alternatives are the labels,
  over the labels' own tokenizations (see ``grammar_answer``);
* the scores: each label's log-probability after the prompt, softmaxed over the labels. The
  prompt's logits and those computed while decoding the answer are reused; only labels of
  several tokens are evaluated further, on top of the prompt's KV cache, which is then rewound.
  Consecutive requests also share their common prefix (system prompt, few-shot turns).

When every label is one token, the answer is the label with the highest score. With longer
labels, greedy decoding commits to the best first token, and a label starting with another
token can still have the higher whole-sequence score; ``confidence`` is always the score of the
answer actually given.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from rung.errors import ConfigurationError
from rung.models.base import ClassifyRequest, Prediction
from rung.models.llamacpp.grammar import gbnf_for_labels, grammar_pick
from rung.models.llamacpp.kvcache import eval_continuation, eval_prompt, logits, rewind
from rung.models.llamacpp.prompt import Prompter
from rung.models.llamacpp.vocab import piece

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["answer_tokens", "classify_one", "grammar_answer"]


@dataclass
class _Rows:
    """Log-softmax rows of the logits after the prompt followed by a given answer prefix."""

    logprobs: dict[tuple[int, ...], npt.NDArray[np.float32]] = field(default_factory=dict)

    def add(self, key: tuple[int, ...], logits: npt.NDArray[np.float32]) -> None:
        top = float(logits.max())
        lse = top + float(np.log(np.exp(logits - top, dtype=np.float64).sum()))
        self.logprobs[key] = logits - np.float32(lse)


def _softmax(logprobs: Sequence[float]) -> list[float]:
    top = max(logprobs)
    exps = [math.exp(lp - top) for lp in logprobs]
    total = math.fsum(exps)
    return [e / total for e in exps]


def _has_token_prefix(sequences: Iterable[tuple[int, ...]]) -> bool:
    seqs = list(sequences)
    return any(a != b and b[: len(a)] == a for a in seqs for b in seqs)


def _logsumexp(values: npt.NDArray[np.float32]) -> float:
    top = float(values.max())
    return top + math.log(math.fsum(math.exp(float(v) - top) for v in values))


def classify_one(
    llm: Llama,
    prompter: Prompter,
    request: ClassifyRequest,
    ends_of: Callable[[], tuple[int, ...]],
) -> Prediction:
    """The answer and the label scores for one request. ``ends_of`` gives the model's end
    tokens (a scan of the vocabulary the caller keeps), asked only when a label's tokens
    begin another's."""
    model_id = prompter.model_id
    labels = request.labels
    if len(labels) < 1 or any(not label for label in labels):
        raise ConfigurationError(
            f"{model_id} got the label set {list(labels)!r}; give at least one label, "
            "and no empty one"
        )
    prompt, prefix = prompter.render(request.messages)
    prompt_tokens = prompter.tokenize(llm, prompt)
    answers = {
        label: answer_tokens(llm, prompter, prompt, prompt_tokens, prefix + label)
        for label in labels
    }
    longest = max(len(t) for t in answers.values())
    n_ctx = min(llm.n_ctx(), len(llm.input_ids))
    if len(prompt_tokens) + longest + 1 > n_ctx:
        raise ConfigurationError(
            f"{model_id}: the prompt takes {len(prompt_tokens)} tokens and the longest "
            f"label {longest}, more than the context of {n_ctx}; raise the n_ctx option "
            "or shorten the prompt (fewer shots)"
        )
    # A label whose tokens begin another's scores the end of the answer too (below).
    ends = ends_of() if _has_token_prefix(answers.values()) else ()

    eval_prompt(llm, prompt_tokens)
    rows = _Rows()
    rows.add((), logits(llm))
    grammar = gbnf_for_labels(labels, prefix)
    generated = grammar_answer(llm, grammar, answers, ends, rows)

    # Every label's log-probability: the rows computed so far (the prompt's, the answer's)
    # plus, for labels of several tokens, an evaluation on top of the prompt's KV cache.
    n_prompt = len(prompt_tokens)
    logprobs = []
    for lab in labels:
        tokens = answers[lab]
        wanted = len(tokens) if ends else len(tokens) - 1
        if any(tokens[:i] not in rows.logprobs for i in range(1, wanted + 1)):
            eval_continuation(llm, n_prompt, tokens[:wanted], rows.add)
        lp = math.fsum(float(rows.logprobs[tokens[:i]][t]) for i, t in enumerate(tokens))
        if ends:
            lp += _logsumexp(rows.logprobs[tokens][list(ends)])
        logprobs.append(lp)
    # Leave the prompt's last token to be evaluated again, so that nothing (llama-cpp-python's
    # own prefix reuse in generate() among others) samples from logits left by a label.
    rewind(llm, n_prompt - 1)

    raw = b"".join(piece(llm, t) for t in generated).decode("utf-8", errors="replace")
    answer = raw.removeprefix(prefix)
    label = answer if answer in labels else None
    scores = dict(zip(labels, _softmax(logprobs), strict=True))
    return Prediction(
        label=label,
        scores=scores,
        confidence=scores[label] if label is not None else None,
        tokens_in=n_prompt,
        tokens_out=len(generated),
        raw=raw,
    )


def grammar_answer(
    llm: Llama,
    grammar: str,
    answers: dict[str, tuple[int, ...]],
    ends: tuple[int, ...],
    rows: _Rows,
) -> tuple[int, ...]:
    """Greedy decoding constrained by the labels' GBNF grammar.

    The candidates at each step are the next tokens of the labels' own tokenizations (and
    the end tokens once a label is complete), filtered by the grammar. Left to the whole
    vocabulary, greedy decoding happily spells a label out of fragments the model never
    meant (" " + "posit" + "iv" + "e" when a base model wanted neither label), and the
    grammar would scan every token of the vocabulary at each step (260k for Gemma)."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(
        llm._model.vocab, grammar.encode("utf-8"), b"root"
    )
    if not sampler:
        raise ConfigurationError(
            f"llama.cpp rejected the grammar built for the labels {list(answers)!r}: {grammar!r}"
        )
    sequences = set(answers.values())
    generated: tuple[int, ...] = ()
    try:
        while True:
            step = len(generated)
            options = {a[step] for a in sequences if len(a) > step and a[:step] == generated}
            if generated in sequences:
                options.update(ends)
            token = grammar_pick(llama_cpp, sampler, sorted(options), rows.logprobs[generated])
            if token is None or token in ends:
                return generated
            llama_cpp.llama_sampler_accept(sampler, token)
            generated = (*generated, token)
            if generated in sequences and not any(
                len(a) > len(generated) and a[: len(generated)] == generated for a in sequences
            ):
                # Complete, and no label goes on from here: the end token needs no decode.
                return generated
            llm.eval([token])
            rows.add(generated, logits(llm))
    finally:
        llama_cpp.llama_sampler_free(sampler)


def answer_tokens(
    llm: Llama, prompter: Prompter, prompt: str, prompt_tokens: list[int], answer: str
) -> tuple[int, ...]:
    """The tokens of an answer as they follow this prompt: tokenized together with it, so
    that a tokenizer which merges across the boundary gives what the model would write."""
    together = prompter.tokenize(llm, prompt + answer)
    if together[: len(prompt_tokens)] == prompt_tokens and len(together) > len(prompt_tokens):
        return tuple(together[len(prompt_tokens) :])
    return tuple(llm.tokenize(answer.encode("utf-8"), add_bos=False, special=False))
