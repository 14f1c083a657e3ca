"""Grounded answers: a question and the chunks retrieved for it become a prompt with numbered
passages; the model's reply is read back into the chunks it cites and checked against them.

    messages = grounded_prompt(question, hits)        # [1]..[k], each with its source
    generation = await model.generate(GenerateRequest(messages))
    answer = read_answer(generation.text, hits)       # citations, grounding, confidence

Everything here but ``answer_with`` is a pure function over plain data, so the server, the
compare task and the cascade share one reading of what "grounded" means:

- a citation is ``[n]`` (or ``[n, m]``) with n a passage number; one outside 1..k cites
  nothing that was retrieved and is dropped (and counted);
- a sentence of the answer is *supported* when most of its content words (``min_overlap``)
  are in the passages it cites, or, when it cites none, in any retrieved passage (worth half:
  the reader cannot check it); a quoted span must appear word for word;
- the answer is *from context* when it has at least one sentence and every one is supported;
- its *confidence* is the mean support of its sentences, times the mean token probability
  when the backend reports log-probabilities (geometric mean of the two). A reply that says
  the passages do not answer the question (``ABSTAIN``) has confidence 0: a cascade climbs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from rung.models.base import ChatMessage, GenerateRequest, Generation, Model
from rung.rag.stores import Hit

__all__ = [
    "ABSTAIN",
    "INSTRUCTIONS",
    "Citation",
    "GroundedAnswer",
    "Grounding",
    "answer_request",
    "answer_with",
    "cited_numbers",
    "content_tokens",
    "ground",
    "grounded_prompt",
    "is_abstention",
    "read_answer",
    "reply_of",
    "sentences",
    "strip_citations",
]

ABSTAIN = "I don't know"
INSTRUCTIONS = (
    "Answer the question using only the numbered passages below. After each sentence, cite "
    "the passages it comes from by number, like [1] or [1][2]. If the passages do not contain "
    f"the answer, reply exactly: {ABSTAIN}."
)
#: [1], [1, 2], [1][3]: the numbers inside one pair of brackets
_CITATION = re.compile(r"\[\s*(\d+(?:\s*[,;]\s*\d+)*)\s*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_LIST_MARKER = re.compile(r"(\d{1,2}|[a-z])[.)]")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_QUOTE = re.compile(r"[\"“]([^\"”]{3,})[\"”]")
#: words that carry no claim: their overlap with a passage proves nothing
_STOPWORDS = frozenset(
    " ".join(
        (
            "a an and are as at be been but by can could do does did for from has have how i if",
            "in into is it its me my no not of on or our so than that the their them then there",
            "these they this to us was we were what when where which who will with would you",
            "your yes",
        )
    ).split()
)


@dataclass(frozen=True)
class Citation:
    """One retrieved chunk the answer cites, as the API reports it."""

    number: int  # its passage number in the prompt, 1-based
    id: str
    source: str
    start: int
    end: int
    text: str

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.number,
            "id": self.id,
            "source": self.source,
            "start": self.start,
            "end": self.end,
            "text": self.text,
        }


@dataclass(frozen=True)
class Grounding:
    """How well an answer stands on the passages it was given."""

    sentences: int
    supported: int  # sentences supported by the passages they cite
    supported_uncited: int  # sentences citing nothing but supported by some passage
    quotes_missing: int  # quoted spans found in no passage
    dropped_citations: int  # citation numbers outside 1..k
    abstained: bool
    from_context: bool
    support: float  # mean sentence support, 0..1
    mean_logprob: float | None
    confidence: float

    def to_json(self) -> dict[str, Any]:
        return {
            "sentences": self.sentences,
            "supported": self.supported,
            "supported_uncited": self.supported_uncited,
            "quotes_missing": self.quotes_missing,
            "dropped_citations": self.dropped_citations,
            "abstained": self.abstained,
            "from_context": self.from_context,
            "support": round(self.support, 4),
            "mean_logprob": self.mean_logprob,
            "confidence": round(self.confidence, 4),
        }


@dataclass
class GroundedAnswer:
    """A reply read against its passages: the text, what it cites, how grounded it is."""

    text: str
    citations: list[Citation]
    grounding: Grounding
    tokens_in: int = 0
    tokens_out: int = 0
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def cited_ids(self) -> list[str]:
        return [c.id for c in self.citations]


def grounded_prompt(
    question: str, hits: Sequence[Hit], instructions: str = INSTRUCTIONS
) -> tuple[ChatMessage, ...]:
    """The system instructions, then one user turn: the numbered passages with their sources
    (and heading path), then the question."""
    passages = []
    for n, hit in enumerate(hits, 1):
        chunk = hit.chunk
        where = " > ".join((chunk.source, *chunk.headings))
        passages.append(f"[{n}] ({where})\n{chunk.text.strip()}")
    user = "Passages:\n\n" + "\n\n".join(passages) + f"\n\nQuestion: {question.strip()}\nAnswer:"
    return (ChatMessage("system", instructions), ChatMessage("user", user))


#: small models go on to write the next question themselves
STOP = ("\nQuestion:",)


def answer_request(
    question: str, hits: Sequence[Hit], max_tokens: int = 256, instructions: str = INSTRUCTIONS
) -> GenerateRequest:
    """The generation request for ``question`` over ``hits`` (greedy, stopped at a new
    question)."""
    return GenerateRequest(grounded_prompt(question, hits, instructions), max_tokens, stop=STOP)


def cited_numbers(text: str) -> list[int]:
    """Every passage number cited in ``text``, in order, repeats kept."""
    return [int(n) for m in _CITATION.finditer(text) for n in re.split(r"[,;]", m.group(1))]


def strip_citations(text: str) -> str:
    return re.sub(r"\s+([.,;!?])", r"\1", _CITATION.sub("", text)).strip()


def sentences(text: str) -> list[str]:
    """The answer's sentences, citations still in them (each is checked against its own)."""
    parts = (s.strip() for s in _SENTENCE_END.split(text))
    # a citation left alone after the full stop belongs to the sentence before it
    out: list[str] = []
    for part in parts:
        if not part:
            continue
        if _LIST_MARKER.fullmatch(part):  # "1." of a numbered list claims nothing
            continue
        if out and not _WORD.search(_CITATION.sub("", part)):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def content_tokens(text: str) -> list[str]:
    """Lower-cased words that carry meaning (stop words and citation numbers left out)."""
    return [w for w in _WORD.findall(_CITATION.sub(" ", text).casefold()) if w not in _STOPWORDS]


def _normalized(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def _overlap(sentence: str, passages: Sequence[str]) -> float:
    words = content_tokens(sentence)
    if not words:
        return 1.0  # nothing claimed ("Yes." after a cited sentence)
    vocabulary = {w for p in passages for w in content_tokens(p)}
    return sum(w in vocabulary for w in words) / len(words)


def is_abstention(text: str) -> bool:
    plain = _normalized(strip_citations(text))
    return not plain or plain.startswith(_normalized(ABSTAIN))


def ground(
    text: str,
    passages: Sequence[str],
    *,
    min_overlap: float = 0.6,
    mean_logprob: float | None = None,
) -> Grounding:
    """Check ``text`` against ``passages`` (the prompt's, in order: citation n is passages[n-1])."""
    k = len(passages)
    dropped = sum(not 1 <= n <= k for n in cited_numbers(text))
    if is_abstention(text):
        return Grounding(0, 0, 0, 0, dropped, True, False, 0.0, mean_logprob, 0.0)
    claims = [s for s in sentences(text) if content_tokens(s) or not _CITATION.fullmatch(s)]
    supported = uncited = missing = 0
    scores: list[float] = []
    for sentence in claims:
        numbers = [n for n in cited_numbers(sentence) if 1 <= n <= k]
        own = [passages[n - 1] for n in dict.fromkeys(numbers)]
        against = own or list(passages)
        quotes = _QUOTE.findall(sentence)
        found = [q for q in quotes if any(_normalized(q) in _normalized(p) for p in against)]
        missing += len(quotes) - len(found)
        ok = _overlap(sentence, against) >= min_overlap and len(found) == len(quotes)
        if ok and own:
            supported += 1
            scores.append(1.0)
        elif ok:
            uncited += 1
            scores.append(0.5)
        else:
            scores.append(0.0)
    support = sum(scores) / len(scores) if scores else 0.0
    confidence = support
    if mean_logprob is not None and support > 0:
        confidence = math.sqrt(support * math.exp(min(0.0, mean_logprob)))
    return Grounding(
        sentences=len(claims),
        supported=supported,
        supported_uncited=uncited,
        quotes_missing=missing,
        dropped_citations=dropped,
        abstained=False,
        from_context=bool(claims) and supported + uncited == len(claims),
        support=support,
        mean_logprob=mean_logprob,
        confidence=confidence,
    )


def read_answer(
    text: str,
    hits: Sequence[Hit],
    *,
    min_overlap: float = 0.6,
    mean_logprob: float | None = None,
) -> GroundedAnswer:
    """The reply with its citations (cited ⊂ retrieved, in order of first citation) and its
    grounding."""
    citations = []
    for n in dict.fromkeys(cited_numbers(text)):
        if 1 <= n <= len(hits):
            c = hits[n - 1].chunk
            citations.append(Citation(n, c.id, c.source, c.start, c.end, c.text))
    grounding = ground(
        text,
        [h.chunk.text for h in hits],
        min_overlap=min_overlap,
        mean_logprob=mean_logprob,
    )
    return GroundedAnswer(text.strip(), citations, grounding)


async def answer_with(
    model: Model,
    question: str,
    hits: Sequence[Hit],
    *,
    max_tokens: int = 256,
    min_overlap: float = 0.6,
    instructions: str = INSTRUCTIONS,
) -> GroundedAnswer:
    """Ask one generative rung ``question`` over ``hits`` and read its reply."""
    generation = await model.generate(answer_request(question, hits, max_tokens, instructions))
    return reply_of(generation, hits, min_overlap=min_overlap)


def reply_of(
    generation: Generation, hits: Sequence[Hit], *, min_overlap: float = 0.6
) -> GroundedAnswer:
    answer = read_answer(generation.text, hits, min_overlap=min_overlap)
    answer.tokens_in, answer.tokens_out = generation.tokens_in, generation.tokens_out
    answer.finish_reason = generation.finish_reason
    return answer
