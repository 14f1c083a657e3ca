"""The generative tasks' scorers against the libraries' own results, on real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sacrebleu
from rouge_score import rouge_scorer
from seqeval.metrics import f1_score, precision_score, recall_score
from seqeval.scheme import IOB2

from rung.tasks.extract import ConllSource, read_conll
from rung.tasks.text_metrics import (
    align_entities,
    bleu_chrf,
    entity_prf,
    iob1_to_iob2,
    rouge,
    token_f1,
)

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.fixture(scope="module")
def conll(shared_data: Path) -> list[list[str]]:
    items = read_conll(ConllSource(path=shared_data / "conll2003" / "eng.testa"), Path("."))
    return [i.reference for i in items[:60]]


def _perturb(tags: list[str], n: int) -> list[str]:
    """Drop or retype some entities: every third sentence loses its first entity's type."""
    out = list(tags)
    if n % 3 == 0:
        out = ["O" if t != "O" and i < 3 else t for i, t in enumerate(out)]
    if n % 4 == 1:
        out = [t[:2] + "MISC" if t.endswith("LOC") else t for t in out]
    return out


def test_iob1_to_iob2() -> None:
    assert iob1_to_iob2(["I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "B-PER",
        "O",
        "B-LOC",
        "B-ORG",
    ]


def test_converted_conll_is_valid_strict_iob2(conll: list[list[str]]) -> None:
    # seqeval's strict mode refuses an I- that starts an entity: IOB1 fails it, IOB2 passes.
    assert f1_score(conll, conll, mode="strict", scheme=IOB2) == 1.0


def test_entity_prf_is_seqeval(conll: list[list[str]]) -> None:
    pred = [_perturb(t, n) for n, t in enumerate(conll)]
    metrics, per_item = entity_prf(conll, pred, resamples=300)
    assert metrics["precision"].value == pytest.approx(precision_score(conll, pred))
    assert metrics["recall"].value == pytest.approx(recall_score(conll, pred))
    assert metrics["f1"].value == pytest.approx(f1_score(conll, pred))
    assert metrics["f1"].value < 1.0
    low, high = metrics["f1"].ci95
    assert low <= metrics["f1"].value <= high
    assert len(per_item) == len(conll)
    assert sum(r["gold"] for r in per_item) > sum(r["tp"] for r in per_item)


def test_align_entities_places_each_on_its_tokens() -> None:
    tokens = ["Phil", "Simmons", "joined", "Standard", "&", "Poor", "'s", "in", "London", "."]
    tags, unplaced = align_entities(
        tokens,
        [
            ("phil simmons", "PER"),
            ("Standard & Poor's", "ORG"),
            ("London.", "LOC"),
            ("Paris", "LOC"),
        ],
    )
    assert tags == ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "I-ORG", "I-ORG", "O", "B-LOC", "O"]
    assert unplaced == 1


def test_unplaced_entities_are_false_positives() -> None:
    gold = [["B-PER", "O"]]
    metrics, per_item = entity_prf(gold, gold, unplaced=[1], resamples=100)
    assert metrics["precision"].value == 0.5 and metrics["recall"].value == 1.0
    assert per_item[0]["predicted"] == 2


def test_rouge_is_rouge_score(shared_data: Path) -> None:
    rows = [
        json.loads(line)
        for line in (shared_data / "dialogsum" / "dialogsum.test.jsonl")
        .read_text()
        .splitlines()[:10]
    ]
    refs = [[r["summary1"], r["summary2"], r["summary3"]] for r in rows]
    # A prediction that is one reference, truncated: partly right against every reference.
    preds = [" ".join(r["summary2"].split()[:12]) for r in rows]
    metrics, per_item = rouge(preds, refs, resamples=200)
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    for name in ("rouge1", "rouge2", "rougeL"):
        best = [
            max(scorer.score(ref, p)[name].fmeasure for ref in rs)
            for p, rs in zip(preds, refs, strict=True)
        ]
        assert [r[name] for r in per_item] == pytest.approx(best)
        assert metrics[name].value == pytest.approx(sum(best) / len(best))
    mean_metrics, _ = rouge(preds, refs, aggregate="mean", resamples=200)
    assert mean_metrics["rougeL"].value < metrics["rougeL"].value


def test_bleu_chrf_are_sacrebleu() -> None:
    rows = [json.loads(line) for line in (FIXTURES / "translate" / "fr_en.jsonl").open()]
    refs = [r["target"] for r in rows]
    hyps = [" ".join(t.split()[:-1]) if i % 2 else t for i, t in enumerate(refs)]
    metrics, per_item = bleu_chrf(hyps, refs, resamples=200)
    assert metrics["bleu"].value == pytest.approx(sacrebleu.corpus_bleu(hyps, [refs]).score)
    assert metrics["chrf"].value == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs]).score)
    assert 0 < metrics["bleu"].value < 100
    assert metrics["chrf"].ci95[0] <= metrics["chrf"].value <= metrics["chrf"].ci95[1]
    assert per_item[0]["chrf"] == pytest.approx(100.0)


def test_token_f1_is_squad_style() -> None:
    assert token_f1("The Eiffel Tower!", "eiffel tower") == 1.0
    assert token_f1("in Paris, France", "Paris") == pytest.approx(2 * (1 / 3) / (1 / 3 + 1))
    assert token_f1("", "") == 1.0
    assert token_f1("no", "yes") == 0.0
