"""The ``answer`` task: questions answered from the user's documents, scored against reference
answers (and, when given, the passages or files that hold them).

    task:
      type: answer
      data: {path: questions.jsonl, question: question, answer: answer, gold: record}
      documents: [docs/]          # indexed on the fly into the run folder; or index: indexes/faq
      k: 4
      mode: hybrid

Per question, as pure functions: exact match and token F1 (SQuAD's normalization), ROUGE-L F1
(``rouge-score``), citation precision and recall against the gold passages, answered from
context (``rung.rag.answer``), and retrieval recall@k, MRR@k and nDCG@k of the passages the
rungs were given; the means with bootstrap 95% intervals.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rung.errors import DataError
from rung.rag.answer import GroundedAnswer, strip_citations
from rung.rag.metrics import mrr_at_k, ndcg_at_k, recall_at_k, unique
from rung.rag.stores import Hit
from rung.tasks import text_metrics
from rung.tasks.generate import JudgeSpec
from rung.tasks.metrics import Estimate, bootstrap_mean
from rung.tasks.text_metrics import answer_tokens

__all__ = [
    "ANSWER_METRICS",
    "AnswerData",
    "AnswerExample",
    "AnswerTask",
    "FaithfulnessJudge",
    "exact_match",
    "gold_key",
    "load_questions",
    "normalize_answer",
    "rouge_l",
    "score_answer",
    "summarize",
    "token_f1",
]

#: in the order reports show them: the answer, its grounding and citations, the retrieval
ANSWER_METRICS = (
    "token_f1",
    "rouge_l",
    "from_context",
    "citation_recall",
    "retrieval_recall",
    "exact_match",
    "confidence",
    "citation_precision",
    "retrieval_mrr",
    "retrieval_ndcg",
)


class AnswerData(BaseModel):
    """Questions with reference answers: .jsonl, .json (a list, or an object holding one) or
    .csv, relative to the spec."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="File of questions, relative to the spec.")
    question: str = Field(default="question", description="Field holding the question.")
    answer: str = Field(default="answer", description="Field holding the reference answer.")
    id: str | None = Field(default=None, description="Field holding an id (default: row number).")
    gold: str | None = Field(
        default=None,
        description="Field holding the gold passages: chunk ids (with #) or record ids of the "
        "indexed tables, one or a list.",
    )
    gold_source: str | None = Field(
        default=None, description="Field holding the gold document (a source path)."
    )


FAITHFULNESS_RUBRIC = (
    "Grade whether the ANSWER to the QUESTION says only what the PASSAGES support: 5 = every "
    "claim is in the passages, 3 = some claims are not, 1 = it contradicts them or makes things "
    "up. An answer that says the passages do not tell is a 5 when they do not. Reply with the "
    "grade only."
)


class FaithfulnessJudge(JudgeSpec):
    """An LLM that grades how faithful each answer is to the passages it was given."""

    rubric: str = Field(default=FAITHFULNESS_RUBRIC, description="What a grade from 1 to 5 means.")


class AnswerTask(BaseModel):
    """Answer questions from retrieved passages."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["answer"] = Field(description="The task type.")
    data: AnswerData
    index: str | None = Field(
        default=None, description="An index built by `rung index` (folder, .db or store URL)."
    )
    documents: list[str] | None = Field(
        default=None, description="Files or folders to index on the fly (into the run folder)."
    )
    embedding: str | None = Field(
        default=None, description="Embedding rung for documents (default: encoder:minilm-l6)."
    )
    k: int = Field(default=4, ge=1, le=50, description="Passages given to each rung.")
    mode: Literal["hybrid", "vector", "keyword"] = Field(default="hybrid")
    limit: int | None = Field(default=None, ge=1, description="Ask only the first N questions.")
    max_tokens: int = Field(default=128, ge=1, description="Tokens an answer may take.")
    min_overlap: float = Field(default=0.6, gt=0, le=1)
    judge: FaithfulnessJudge | None = Field(
        default=None,
        description="An LLM judge of faithfulness to the passages (metric `faithfulness`, 0-1).",
    )

    @model_validator(mode="after")
    def _one_source(self) -> AnswerTask:
        if (self.index is None) == (self.documents is None):
            raise ValueError("give index (an index folder) or documents (files to index), one")
        return self


@dataclass(frozen=True)
class AnswerExample:
    id: str
    question: str
    answer: str
    gold: tuple[str, ...] = ()


def _rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}") from None
    try:
        if suffix == ".jsonl":
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        if suffix == ".json":
            data = json.loads(text)
            if isinstance(data, dict):
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(lists) != 1:
                    raise DataError(f"{path}: a JSON object must hold exactly one list of rows")
                data = lists[0]
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a list of objects")
            return data
        if suffix == ".csv":
            return list(csv.DictReader(text.splitlines()))
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: malformed JSON at line {e.lineno}: {e.msg}") from None
    raise DataError(f"{path}: questions are read from .jsonl, .json or .csv, not {suffix!r}")


def load_questions(
    data: AnswerData, base_dir: Path, limit: int | None = None
) -> list[AnswerExample]:
    path = data.path if data.path.is_absolute() else base_dir / data.path
    if not path.is_file():
        raise DataError(f"questions file not found: {path}")
    examples = []
    for i, row in enumerate(_rows(path), 1):
        if not isinstance(row, dict):
            raise DataError(f"{path}: row {i} is not an object")
        for name in (data.question, data.answer):
            if not str(row.get(name) or "").strip():
                raise DataError(f"{path}: row {i} has no {name!r}; set data.{name} to its field")
        gold: list[str] = []
        for field_name in (data.gold, data.gold_source):
            if field_name is not None:
                value = row.get(field_name)
                gold += [str(v) for v in value] if isinstance(value, list) else [str(value)]
        ident = str(row[data.id]) if data.id is not None else str(i)
        examples.append(
            AnswerExample(ident, str(row[data.question]), str(row[data.answer]), tuple(gold))
        )
    if not examples:
        raise DataError(f"{path} holds no questions")
    return examples[:limit] if limit else examples


# -- answer metrics (SQuAD's normalization) -------------------------------------------------


def normalize_answer(text: str) -> str:
    """Lower case, citations, punctuation and articles removed, white space collapsed."""
    return " ".join(answer_tokens(strip_citations(text)))


def exact_match(prediction: str, reference: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(reference))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1 (``generate``'s own), with the answer's citations left out."""
    return text_metrics.token_f1(strip_citations(prediction), strip_citations(reference))


def rouge_l(prediction: str, reference: str) -> float:
    """ROUGE-L F1 (longest common subsequence), Porter-stemmed, as rouge-score computes it."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return float(scorer.score(reference, strip_citations(prediction))["rougeL"].fmeasure)


def gold_key(hit: Hit, gold: Sequence[str]) -> str:
    """What a passage is compared to the gold by: its chunk id when the gold names chunks
    (``#`` in them), else its record id for tables, else its source."""
    chunk = hit.chunk
    if any("#" in g for g in gold):
        return chunk.id
    if chunk.record is not None and not any(g == chunk.source for g in gold):
        return chunk.record
    return chunk.source


def score_answer(
    example: AnswerExample, hits: Sequence[Hit], answer: GroundedAnswer, k: int
) -> dict[str, float | None]:
    """Every metric of one question (None where it needs gold passages the data lacks)."""
    scores: dict[str, float | None] = {
        "exact_match": exact_match(answer.text, example.answer),
        "token_f1": token_f1(answer.text, example.answer),
        "rouge_l": rouge_l(answer.text, example.answer),
        "from_context": float(answer.grounding.from_context),
        "confidence": answer.grounding.confidence,
    }
    gold = set(example.gold)
    if not gold:
        return scores | {name: None for name in ANSWER_METRICS if name not in scores}
    ranked = unique(gold_key(h, example.gold) for h in hits)
    by_chunk = {h.chunk.id: gold_key(h, example.gold) for h in hits}
    cited = unique(by_chunk[c] for c in answer.cited_ids if c in by_chunk)
    return scores | {
        "citation_precision": (sum(c in gold for c in cited) / len(cited)) if cited else 0.0,
        "citation_recall": len(set(cited) & gold) / len(gold),
        "retrieval_recall": recall_at_k(ranked, gold, k),
        "retrieval_mrr": mrr_at_k(ranked, gold, k),
        "retrieval_ndcg": ndcg_at_k(ranked, gold, k),
    }


def summarize(
    rows: Sequence[dict[str, float | None]], *, resamples: int = 1000, seed: int = 0
) -> dict[str, Estimate]:
    """Each metric's mean over the questions that have it, with its bootstrap interval."""
    out = {}
    for name in ANSWER_METRICS:
        values = [v for r in rows if (v := r.get(name)) is not None]
        if values:
            out[name] = bootstrap_mean(values, resamples=resamples, seed=seed)
    return out
