"""The generative task kinds: their specs from task: sections, their data, their requests and
their scores, on slices of the shared data and the translation fixture."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from seqeval.metrics import f1_score

from rung.errors import SpecError
from rung.tasks.extract import gold_entities, parse_entities
from rung.tasks.generate import parse_verdict
from rung.tasks.registry import kind_of, parse_task
from tests.fixture_data import fr_en_translate


def _extract(shared_data: Path) -> dict[str, object]:
    return {
        "type": "extract",
        "data": {"path": str(shared_data / "conll2003" / "eng.train")},
        "test_data": {"path": str(shared_data / "conll2003" / "eng.testa")},
        "splits": {"test_size": 20, "train_size": 50},
        "prompt": {
            "instructions": "Entities ({types}) as JSON.",
            "shots": 2,
        },
    }


def test_extract_reads_asks_and_scores(shared_data: Path) -> None:
    kind = kind_of("extract")
    spec = parse_task(_extract(shared_data))
    train, test = kind.load_items(spec, Path("."))
    assert len(test) == 20 and len(train) == 50
    requests = kind.build_requests(spec, train, test)
    system, *turns = requests[0].messages
    assert system.content == "Entities (PER, ORG, LOC, MISC) as JSON."
    assert len(turns) == 5 and json.loads(turns[1].content) is not None
    # The gold entities, answered as a rung would: perfect scores, as seqeval says.
    outputs = [json.dumps(gold_entities(i)) for i in test]
    scores = kind.score(spec, outputs, test, resamples=200)
    assert scores.metrics["f1"].value == pytest.approx(1.0)
    # Every other sentence unanswered: recall drops, precision stays, as seqeval says.
    outputs = [o if n % 2 else "no idea" for n, o in enumerate(outputs)]
    scores = kind.score(spec, outputs, test, resamples=200)
    pred = [kind.tags_of(spec, o, i) for o, i in zip(outputs, test, strict=True)]
    assert scores.metrics["f1"].value == pytest.approx(f1_score([i.reference for i in test], pred))
    assert scores.metrics["precision"].value == pytest.approx(1.0)
    assert scores.extras["invalid"] == 10


def test_parse_entities_json_or_lines() -> None:
    types = ["PER", "LOC"]
    assert parse_entities(
        'Sure: [{"text": "Ann", "type": "per"}, {"text": "x", "type": "FOO"}]', types
    ) == [("Ann", "PER")]
    assert parse_entities("PER: Ann Lee\n- LOC: Paris", types) == [
        ("Ann Lee", "PER"),
        ("Paris", "LOC"),
    ]
    assert parse_entities("[]", types) == []
    assert parse_entities("I cannot tell.", types) is None


def test_summarize_on_dialogsum(shared_data: Path) -> None:
    kind = kind_of("summarize")
    path = shared_data / "dialogsum" / "dialogsum.test.jsonl"
    spec = parse_task(
        {
            "type": "summarize",
            "data": {
                "path": str(path),
                "text": "dialogue",
                "id": "fname",
                "references": ["summary1", "summary2", "summary3"],
            },
            "splits": {"test_size": 8},
        }
    )
    train, test = kind.load_items(spec, Path("."))
    assert len(test) == 8 and all(len(i.reference) == 3 for i in test)
    assert {i.id for i in test}.isdisjoint({i.id for i in train})
    scores = kind.score(spec, [i.reference[1] for i in test], test, resamples=200)
    assert scores.metrics["rougeL"].value == pytest.approx(1.0)
    assert scores.primary == "rougeL"
    assert scores.extras["length_ratio"] > 0


def test_translate_fixture_scores() -> None:
    kind = kind_of("translate")
    spec = parse_task(
        {
            **fr_en_translate(),
            "splits": {"test_size": 6},
        }
    )
    train, test = kind.load_items(spec, Path("."))
    request = kind.build_requests(spec, train, test)[0]
    assert "from French to English" in request.messages[0].content
    scores = kind.score(spec, [i.reference[0] for i in test], test, resamples=200)
    assert scores.metrics["bleu"].value == pytest.approx(100.0)
    assert scores.metrics["chrf"].value == pytest.approx(100.0)


def test_generate_with_judge_verdicts(tmp_path: Path) -> None:
    data = tmp_path / "qa.jsonl"
    data.write_text(
        "\n".join(
            json.dumps({"text": q, "reference": a})
            for q, a in [("Capital of France?", "Paris"), ("2+2?", "4"), ("Sky colour?", "blue")]
        )
    )
    kind = kind_of("chat")
    spec = parse_task(
        {
            "type": "chat",
            "data": {"path": str(data)},
            "splits": {"test_size": 3},
            "judge": {"model": "llamacpp:gemma-3-270m"},
        }
    )
    _, test = kind.load_items(spec, Path("."))
    outputs = [i.reference[0] for i in test]
    scores = kind.score(spec, outputs, test, resamples=200, verdicts=["5", "Grade: 3", "?"])
    assert scores.metrics["token_f1"].value == pytest.approx(1.0)
    assert scores.metrics["judge"].value == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert scores.extras["judge_ungraded"] == 1
    assert parse_verdict("4/5") == 0.75


def test_fields_validity_and_accuracy(tmp_path: Path) -> None:
    data = tmp_path / "orders.jsonl"
    rows = [
        {"text": "Order 12 for Ann, 3 items", "fields": {"name": "Ann", "items": 3}},
        {"text": "Order 13 for Bo, 1 item", "fields": {"name": "Bo", "items": 1}},
    ]
    data.write_text("\n".join(json.dumps(r) for r in rows))
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "items": {"type": "integer"}},
        "required": ["name", "items"],
    }
    kind = kind_of("fields")
    spec = parse_task(
        {
            "type": "fields",
            "data": {"path": str(data)},
            "schema": schema,
            "splits": {"test_size": 2},
        }
    )
    _, test = kind.load_items(spec, Path("."))
    by_text = {i.text: i for i in test}
    items = [by_text[rows[0]["text"]], by_text[rows[1]["text"]]]
    outputs = ['{"name": "ann", "items": 3}', '{"name": "Bo", "items": "one"}']
    scores = kind.score(spec, outputs, items, resamples=200)
    assert scores.metrics["valid"].value == 0.5
    assert scores.metrics["field:name"].value == 1.0
    assert scores.metrics["field:items"].value == 0.5
    assert scores.metrics["field_accuracy"].value == 0.75


def test_fields_schema_needs_properties() -> None:
    with pytest.raises(SpecError, match="properties"):
        parse_task({"type": "fields", "data": {"path": "x.jsonl"}, "schema": {"type": "object"}})
