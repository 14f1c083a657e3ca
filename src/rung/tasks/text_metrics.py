"""Scores of generated text as pure functions: entity P/R/F1 (seqeval), ROUGE (rouge-score),
BLEU and chrF (sacrebleu), SQuAD-style token F1, each with a percentile-bootstrap 95% interval
over the test items.

Corpus-level figures (entity F1, BLEU, chrF) are not means of per-item scores: the bootstrap
resamples each item's sufficient statistics (entity counts, n-gram matches) and recomputes the
corpus figure from their sums, so the point value is exactly what the library reports on the
whole set. The libraries are imported on first use; a missing one names the extra.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from rung.errors import MissingDependencyError
from rung.tasks.metrics import Estimate, bootstrap_mean

__all__ = [
    "align_entities",
    "bleu_chrf",
    "entity_counts",
    "entity_prf",
    "iob1_to_iob2",
    "rouge",
    "token_f1",
]

Span = tuple[str, int, int]


def _need(module: str, package: str) -> Any:
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as e:
        raise MissingDependencyError(f"scoring with {package}", "pip install 'rung[tasks]'") from e


def _resample(n: int, resamples: int, seed: int) -> NDArray[np.int64]:
    # The same draws as rung.tasks.metrics, so two figures of one run move together.
    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _bootstrap_stats(
    stats: NDArray[np.float64],
    figure: Callable[[NDArray[np.float64]], float],
    resamples: int,
    seed: int,
) -> Estimate:
    """``figure`` of the summed per-item statistics (rows), and its bootstrap interval."""
    if len(stats) == 0:
        return Estimate(0.0, (0.0, 0.0))
    value = figure(stats.sum(axis=0))
    draws = [figure(stats[row].sum(axis=0)) for row in _resample(len(stats), resamples, seed)]
    low, high = np.percentile(np.asarray(draws), [2.5, 97.5])
    return Estimate(value, (float(low), float(high)))


# --- entities ------------------------------------------------------------------------------


def iob1_to_iob2(tags: Sequence[str]) -> list[str]:
    """CoNLL-2003's IOB1 (B- only between two entities of one type) as IOB2 (B- at every start)."""
    out: list[str] = []
    prev = "O"
    for tag in tags:
        if tag.startswith("I-"):
            kind = tag[2:]
            if prev == "O" or prev[2:] != kind:
                tag = "B-" + kind
        out.append(tag)
        prev = tag
    return out


def _spans(tags: Sequence[str]) -> set[Span]:
    get_entities = _need("seqeval.metrics.sequence_labeling", "seqeval").get_entities
    return {(t, s, e) for t, s, e in get_entities(list(tags))}


def entity_counts(gold: Sequence[str], pred: Sequence[str]) -> tuple[int, int, int]:
    """(true positives, predicted, gold) entities of one sentence, by exact span and type."""
    g, p = _spans(gold), _spans(pred)
    return len(g & p), len(p), len(g)


def _prf(tp: float, n_pred: float, n_gold: float) -> tuple[float, float, float]:
    precision = tp / n_pred if n_pred else 0.0
    recall = tp / n_gold if n_gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _prf_part(k: int) -> Callable[[NDArray[np.float64]], float]:
    return lambda s: _prf(float(s[0]), float(s[1]), float(s[2]))[k]


def entity_prf(
    gold: Sequence[Sequence[str]],
    pred: Sequence[Sequence[str]],
    *,
    unplaced: Sequence[int] | None = None,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Estimate], list[dict[str, float]]]:
    """Micro entity precision, recall and F1 over sentences of IOB2 tags (seqeval's default
    mode, conlleval's), with intervals; and per sentence its counts and F1. ``unplaced``: per
    sentence, predicted entities that fit none of its tokens, counted as false positives."""
    counts = np.array(
        [entity_counts(g, p) for g, p in zip(gold, pred, strict=True)], dtype=np.float64
    ).reshape(-1, 3)
    if unplaced is not None:
        counts[:, 1] += np.asarray(unplaced, dtype=np.float64)
    metrics = {
        name: _bootstrap_stats(counts, _prf_part(k), resamples, seed)
        for k, name in enumerate(("precision", "recall", "f1"))
    }
    per_item = [
        {
            "tp": tp,
            "predicted": n_p,
            "gold": n_g,
            "f1": _prf(tp, n_p, n_g)[2] if n_g or n_p else 1.0,
        }
        for tp, n_p, n_g in counts.tolist()
    ]
    return metrics, per_item


def _norm_token(token: str) -> str:
    return token.strip(string.punctuation).lower() or token


def _key(text: str) -> str:
    return re.sub(r"\W", "", text.casefold())


def align_entities(
    tokens: Sequence[str], entities: Sequence[tuple[str, str]]
) -> tuple[list[str], int]:
    """IOB2 tags for ``tokens`` from entities a generative rung listed as (text, type), and how
    many of them fit nowhere. Each entity marks the first run of tokens, not yet tagged, whose
    letters and digits are the entity's (case, spaces and punctuation ignored, so "Poor's"
    finds the tokens "Poor 's"). An entity found nowhere in the sentence is still a false
    positive: the caller counts it as predicted (``entity_prf``'s ``unplaced``)."""
    tags = ["O"] * len(tokens)
    keys = [_key(t) for t in tokens]
    unplaced = 0
    for text, kind in entities:
        want = _key(text)
        if not want or not kind:
            unplaced += bool(kind)
            continue
        for start in range(len(tokens)):
            if not keys[start] or not want.startswith(keys[start]):
                continue
            end, got = start, ""
            while end < len(tokens) and len(got) < len(want):
                got += keys[end]
                end += 1
            if got == want and all(t == "O" for t in tags[start:end]):
                tags[start] = "B-" + kind
                for i in range(start + 1, end):
                    tags[i] = "I-" + kind
                break
        else:
            unplaced += 1
    return tags, unplaced


# --- overlap with references --------------------------------------------------------------

RougeName = Literal["rouge1", "rouge2", "rougeL"]
Aggregate = Literal["max", "mean"]


def rouge(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    *,
    names: Sequence[RougeName] = ("rouge1", "rouge2", "rougeL"),
    aggregate: Aggregate = "max",
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Estimate], list[dict[str, float]]]:
    """ROUGE F-measures (rouge-score, Porter stemmer on) of each prediction against its
    references, taking the best reference (``max``, the usual choice with several references)
    or their ``mean``; the figure is the mean over items, with its interval."""
    rouge_scorer = _need("rouge_score.rouge_scorer", "rouge-score")
    scorer = rouge_scorer.RougeScorer(list(names), use_stemmer=True)
    per_item: list[dict[str, float]] = []
    for pred, refs in zip(predictions, references, strict=True):
        by_ref = [scorer.score(ref, pred) for ref in refs]
        row: dict[str, float] = {}
        for name in names:
            values = [s[name].fmeasure for s in by_ref] or [0.0]
            row[name] = max(values) if aggregate == "max" else float(np.mean(values))
        per_item.append(row)
    metrics: dict[str, Estimate] = {
        name: bootstrap_mean([r[name] for r in per_item], resamples=resamples, seed=seed)
        for name in names
    }
    return metrics, per_item


_ARTICLES = re.compile(r"\b(a|an|the)\b")


def answer_tokens(text: str) -> list[str]:
    """SQuAD's normalization: lower case, punctuation and articles removed, split on space."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return _ARTICLES.sub(" ", text).split()


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD's token F1: lower-cased, punctuation and articles removed, bag-of-tokens overlap."""
    p, r = answer_tokens(prediction), answer_tokens(reference)
    if not p or not r:
        return float(p == r)
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def _corpus_figure(metric: Any) -> Callable[[NDArray[np.float64]], float]:
    # sacrebleu's own paired bootstrap recomputes the corpus score from summed statistics
    # with these two methods; they are its documented-by-use extension points.
    return lambda s: float(metric._compute_score_from_stats(s.astype(np.int64).tolist()).score)


def bleu_chrf(
    predictions: Sequence[str],
    references: Sequence[str],
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[dict[str, Estimate], list[dict[str, float]]]:
    """Corpus BLEU and chrF (sacrebleu's defaults, 0-100) with intervals, and per item the
    sentence-level BLEU and chrF."""
    metrics_mod = _need("sacrebleu.metrics", "sacrebleu")
    out: dict[str, Estimate] = {}
    per_item: list[dict[str, float]] = [{} for _ in predictions]
    for name, metric in (("bleu", metrics_mod.BLEU()), ("chrf", metrics_mod.CHRF())):
        sentence = metrics_mod.BLEU(effective_order=True) if name == "bleu" else metric
        stats = np.asarray(
            metric._extract_corpus_statistics(list(predictions), [list(references)]),
            dtype=np.float64,
        ).reshape(len(predictions), -1)
        out[name] = _bootstrap_stats(stats, _corpus_figure(metric), resamples, seed)
        for i, (p, r) in enumerate(zip(predictions, references, strict=True)):
            per_item[i][name] = float(sentence.sentence_score(p, [r]).score)
    return out, per_item
