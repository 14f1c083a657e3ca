"""Generation: the decoding loop that ``generate`` and ``stream`` share, so that a streamed
answer is the generated one, token for token, and the text released as it is decoded.

Why not llama-cpp-python's own stream: it reports no token counts, it can only be left by
abandoning its generator, and it overruns max_tokens (42 tokens for 40) when the answer ends in
a character split over several tokens (Japanese, emoji).
"""

from __future__ import annotations

import codecs
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from rung.errors import ConfigurationError
from rung.models.base import GenerateRequest, Generation
from rung.models.llamacpp.options import LlamaCppOptions
from rung.models.llamacpp.prompt import Prompter
from rung.models.llamacpp.vocab import piece

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["StopScanner", "decode"]

#: emit(text, tokens_in, tokens_out): a piece of text as it is decoded, with the counts so far
Emit = Callable[[str, int, int], None]


def decode(
    llm: Llama,
    prompter: Prompter,
    request: GenerateRequest,
    opts: LlamaCppOptions,
    emit: Emit | None = None,
    stop: threading.Event | None = None,
) -> Generation:
    """Generate, as llama-cpp-python's create_chat_completion (or create_completion, for a
    model without a chat template) would: the same prompt tokens, sampler and stop strings,
    so that answers do not change with the way they are asked for. The loop is ours so that
    text comes out as it is decoded (``emit``), whole UTF-8 characters only and never a part
    of a stop string, and so that ``stop`` can end it between two tokens. The caller holds
    the model's lock."""
    import llama_cpp

    prompt, stops, strip_space = prompter.generation_prompt(llm, request.messages, request.stop)
    n_ctx = llm.n_ctx()
    if len(prompt) >= n_ctx:
        raise ConfigurationError(
            f"{prompter.model_id}: the prompt takes {len(prompt)} tokens, more than the "
            f"context of {n_ctx}; raise the n_ctx option, or shorten the prompt"
        )
    max_tokens = request.max_tokens if request.max_tokens > 0 else n_ctx
    if opts.max_tokens is not None:
        max_tokens = min(max_tokens, opts.max_tokens)
    max_tokens = min(max_tokens, n_ctx - len(prompt))

    text = StopScanner(stops, strip_space)
    pieces: list[str] = []
    n_out = 0
    logprobs = TokenLogprobs(llm)
    finish = "length"
    llm.set_seed(opts.seed)
    # Logits left in the context may be a label's (classify evaluates labels on top of the
    # prompt, then rewinds): a prompt found whole in the cache evaluates its last token again
    # rather than sampling from them.
    llm._requires_eval = True
    steps = llm.generate(
        prompt,
        top_k=40,
        top_p=0.95,
        min_p=0.05,
        typical_p=1.0,
        temp=request.temperature,
        repeat_penalty=opts.repeat_penalty,
    )
    try:
        for token in steps:
            logprobs.add(token)
            if llama_cpp.llama_vocab_is_eog(llm._model.vocab, token):
                finish = "stop"
                break
            n_out += 1
            released = text.add(piece(llm, token))
            if released:
                pieces.append(released)
                if emit is not None:
                    emit(released, len(prompt), n_out)
            if text.stopped:
                finish = "stop"
                break
            # Checked before asking for the next token: asking evaluates this one.
            if n_out >= max_tokens or (stop is not None and stop.is_set()):
                break
    finally:
        steps.close()
    rest = text.flush()
    if rest:
        pieces.append(rest)
        if emit is not None:
            emit(rest, len(prompt), n_out)
    return Generation(
        text="".join(pieces),
        tokens_in=len(prompt),
        tokens_out=n_out,
        finish_reason=finish,
        mean_logprob=logprobs.mean(),
    )


class TokenLogprobs:
    """The log-probability of each sampled token under the model's own distribution (before
    temperature and the samplers' cuts), read from the logits the token was sampled from: when
    the generator hands a token over it has not evaluated it yet, so the context's last logits
    are the ones that chose it."""

    def __init__(self, llm: Llama) -> None:
        self.llm = llm
        self.n_vocab = llm.n_vocab()
        self.total = 0.0
        self.count = 0

    def add(self, token: int) -> None:
        import llama_cpp
        import numpy as np

        row = llama_cpp.llama_get_logits_ith(self.llm._ctx.ctx, -1)
        if not row:
            return
        logits = np.ctypeslib.as_array(row, shape=(self.n_vocab,))
        top = float(logits.max())
        norm = top + math.log(float(np.exp(logits - top).sum()))
        self.total += float(logits[token]) - norm
        self.count += 1

    def mean(self) -> float | None:
        return self.total / self.count if self.count else None


class StopScanner:
    """The text of a generation, released as its bytes come: whole UTF-8 characters only, cut
    at the first stop string, and holding back an ending that may begin one."""

    def __init__(self, stops: Sequence[str], strip_space: bool) -> None:
        self.stops = [s.encode("utf-8") for s in stops if s]
        self.raw = bytearray()
        self.sent = 0  # bytes of raw released
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
        self.strip_space = strip_space
        self.stopped = False

    def add(self, piece: bytes) -> str:
        self.raw += piece
        # A stop cannot begin in the released bytes: they never end with a stop's beginning.
        found = [i for s in self.stops if (i := self.raw.find(s, self.sent)) >= 0]
        if found:
            self.stopped = True
            return self._release(min(found))
        held = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.raw) - self.sent), held, -1):
                if self.raw.endswith(s[:k]):
                    held = k
                    break
        return self._release(len(self.raw) - held)

    def flush(self) -> str:
        """What is left once the generation ends (nothing more after a stop)."""
        if self.stopped:
            return self._decode(b"", final=True)
        return self._release(len(self.raw), final=True)

    def _release(self, end: int, final: bool = False) -> str:
        chunk = bytes(self.raw[self.sent : end])
        self.sent = max(self.sent, end)
        return self._decode(chunk, final)

    def _decode(self, chunk: bytes, final: bool) -> str:
        text: str = self.decoder.decode(chunk, final)
        if self.strip_space and text:
            text = text.removeprefix(" ")
            self.strip_space = False
        return text
