"""POST /v1/ask and GraphQL's ask on a real server: smollm2, and a cascade of smollm2 and
gemma-3-270m, answering from an index of the e-commerce FAQ (../shared/data/ecommerce_faq)
built with the bundled MiniLM in a temporary folder."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.rag import build_index
from rung.rag.search import INDEX_DB
from rung.rag.stores import open_store, sqlite_url
from rung.serve import create_app, parse_config
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger
from tests.serve.conftest import LABELS, LLAMA_OPTIONS, cascade_backend
from tests.serve.harness import AppHarness

RETURNS = "How can I return a product?"


@pytest.fixture(scope="module")
def faq_index(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    out = tmp_path_factory.mktemp("faq-index")
    store = open_store(sqlite_url(out / INDEX_DB))
    try:
        build_index([shared_data / "ecommerce_faq" / "Ecommerce_FAQ_Chatbot_dataset.json"], store)
    finally:
        store.close()
    return out


@pytest.fixture(scope="module")
def asked(
    tmp_path_factory: pytest.TempPathFactory, faq_index: Path, fpb_path: Path
) -> Iterator[AppHarness]:
    base = tmp_path_factory.mktemp("ask-serve")
    ledger_url = f"sqlite:///{base / 'usage.db'}"
    config = {
        "models": [
            {"id": "llamacpp:smollm2-135m-instruct", "name": "smollm2", "options": LLAMA_OPTIONS},
            {  # a classifier: it cannot answer questions
                "id": "encoder:minilm-l6",
                "train": {"path": str(fpb_path), "labels": LABELS, "train_size": 30},
            },
        ],
        "cascades": {
            "support": {
                "rungs": [
                    {
                        "model": "llamacpp:smollm2-135m-instruct",
                        "options": LLAMA_OPTIONS,
                        "threshold": 0.5,
                        "cost_usd_per_1k": 0.01,
                    },
                    {
                        "model": "llamacpp:gemma-3-270m",
                        "options": LLAMA_OPTIONS,
                        "cost_usd_per_1k": 0.1,
                    },
                ]
            },
            # calibrated on a text run's token probabilities: it generates on chat completions,
            # and a threshold of 1 sends every request on to the larger rung
            "chat": {
                "confidence": "tokens",
                "rungs": [
                    {
                        "model": "llamacpp:smollm2-135m-instruct",
                        "options": LLAMA_OPTIONS,
                        "threshold": 1.0,
                        "cost_usd_per_1k": 0.01,
                    },
                    {
                        "model": "llamacpp:gemma-3-270m",
                        "options": LLAMA_OPTIONS,
                        "cost_usd_per_1k": 0.1,
                    },
                ],
            },
            # calibrated on an answer run: its own threshold, not ask.min_confidence, decides
            "support-calibrated": {
                "confidence": "grounded",
                "rungs": [
                    {
                        "model": "llamacpp:smollm2-135m-instruct",
                        "options": LLAMA_OPTIONS,
                        "threshold": 0.0,
                        "cost_usd_per_1k": 0.01,
                    },
                    {
                        "model": "llamacpp:gemma-3-270m",
                        "options": LLAMA_OPTIONS,
                        "cost_usd_per_1k": 0.1,
                    },
                ],
            },
        },
        "indexes": {
            "faq": str(faq_index),
            "other-model": {"path": str(faq_index), "model": "encoder:bge-small"},
            "missing": "no-such-index",
            "later": "built-later",
        },
        "ask": {"index": "faq", "k": 3, "max_tokens": 48, "min_confidence": 1.0},
        "auth": {"required": True},
    }
    with cascade_backend(), pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_CACHE_DIR", str(base / "cache"))
        app = create_app(parse_config(config, base_dir=base), ledger_url=ledger_url)
        harness = AppHarness(app).start()
        try:
            yield harness
        finally:
            harness.stop()


@pytest.fixture(scope="module")
def ask_key(asked: AppHarness) -> Iterator[str]:
    db = Ledger(asked.state.ledger_url)
    yield create_key(db, "ask tests")[1]
    db.close()


def test_ask_answers_with_citations_from_the_retrieved_passages(
    asked: AppHarness, ask_key: str
) -> None:
    r = asked.post("/v1/ask", ask_key, json={"question": RETURNS, "model": "smollm2"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "ask" and body["index"] == "faq" and body["answer"]
    assert len(body["retrieved"]) == 3
    retrieved = {h["id"] for h in body["retrieved"]}
    # the FAQ's own answer about returns is among the passages
    assert any(h["source"].endswith(".json") for h in body["retrieved"])
    assert {c["id"] for c in body["citations"]} <= retrieved
    for c in body["citations"]:
        assert set(c) == {"n", "id", "source", "start", "end", "text"} and c["text"]
    g = body["grounded"]
    assert 0.0 <= g["confidence"] <= 1.0 and isinstance(g["from_context"], bool)
    assert body["rung"]["answered_by"] == "llamacpp:smollm2-135m-instruct"
    assert body["usage"]["prompt_tokens"] > 100 and body["usage"]["completion_tokens"] > 0
    print(f"smollm2 on {RETURNS!r}: {body['answer']!r}, grounded {g}")


def test_ask_streams_deltas_then_the_citations(asked: AppHarness, ask_key: str) -> None:
    payload = {"question": RETURNS, "model": "smollm2"}
    whole = asked.post("/v1/ask", ask_key, json=payload).json()
    r = asked.post("/v1/ask", ask_key, json=payload | {"stream": True})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"ask.chunk"} and len({c["id"] for c in chunks}) == 1
    assert len(chunks) > 2  # token by token
    final = chunks[-1]
    # the answer is the streamed text without its surrounding white space
    assert "".join(c["delta"] for c in chunks).strip() == whole["answer"] == final["answer"]
    assert final["citations"] == whole["citations"] and final["grounded"] == whole["grounded"]
    assert final["usage"] == whole["usage"]


def test_cascade_keeps_the_small_answer_or_climbs_when_it_is_not_grounded(
    asked: AppHarness, ask_key: str
) -> None:
    small = "llamacpp:smollm2-135m-instruct"
    low = asked.post(
        "/v1/ask",
        ask_key,
        json={"question": RETURNS, "model": "cascade:support", "min_confidence": 0.0},
    ).json()
    assert low["rung"]["answered_by"] == small and low["rung"]["climbed_from"] == []
    assert low["cost_usd"] == pytest.approx(0.01 / 1000)
    high = asked.post(
        "/v1/ask",
        ask_key,
        json={"question": RETURNS, "model": "cascade:support", "min_confidence": 1.0},
    ).json()
    tried = high["rung"]["tried"]
    assert tried[0]["rung"] == small
    if tried[0]["confidence"] < 1.0:  # the small answer was not fully grounded: it climbed
        assert high["rung"]["answered_by"] == "llamacpp:gemma-3-270m"
        assert high["rung"]["climbed_from"] == [small]
        assert high["cost_usd"] == pytest.approx((0.01 + 0.1) / 1000)
    else:
        assert high["rung"]["answered_by"] == small
    print(f"cascade at min_confidence 1.0: {tried}")


def test_a_calibrated_cascade_keeps_an_answer_at_its_own_threshold(
    asked: AppHarness, ask_key: str
) -> None:
    small = "llamacpp:smollm2-135m-instruct"
    # ask.min_confidence (1.0 here) would climb any answer not wholly grounded; the small
    # rung's calibrated threshold of 0 keeps whatever it answers
    calibrated = asked.post(
        "/v1/ask",
        ask_key,
        json={"question": RETURNS, "model": "cascade:support-calibrated", "k": 3},
    ).json()
    assert calibrated["rung"]["answered_by"] == small, calibrated["rung"]
    assert calibrated["rung"]["climbed_from"] == []
    # a request's own min_confidence stands over the thresholds
    strict = asked.post(
        "/v1/ask",
        ask_key,
        json={"question": RETURNS, "model": "cascade:support-calibrated", "min_confidence": 1.0},
    ).json()
    tried = strict["rung"]["tried"]
    if tried[0]["confidence"] < 1.0:
        assert strict["rung"]["answered_by"] == "llamacpp:gemma-3-270m"


def test_a_generating_cascade_climbs_on_its_token_probability(
    asked: AppHarness, ask_key: str
) -> None:
    small, large = "llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"
    body = {
        "model": "cascade:chat",
        "messages": [{"role": "user", "content": "Translate into English: Il pleut."}],
        "max_tokens": 12,
    }
    r = asked.post("/v1/chat/completions", ask_key, json=body)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["choices"][0]["message"]["content"]
    rung = reply["rung"]
    assert rung["answered_by"] == large and rung["climbed_from"] == [small]
    assert [t["rung"] for t in rung["tried"]] == [small, large]
    assert all(0 < t["confidence"] < 1 for t in rung["tried"])
    assert rung["cost_usd"] == pytest.approx((0.01 + 0.1) / 1000)
    # the request used what both rungs generated
    assert reply["usage"]["completion_tokens"] > 0
    # streamed, the kept answer comes whole once the cascade has decided
    streamed = asked.post("/v1/chat/completions", ask_key, json=body | {"stream": True})
    assert streamed.status_code == 200, streamed.text
    lines = streamed.text.splitlines()
    events = [json.loads(line[6:]) for line in lines if line.startswith("data: {")]
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])
    assert text == reply["choices"][0]["message"]["content"]
    assert events[-1]["rung"]["answered_by"] == large


def test_graphql_ask(asked: AppHarness, ask_key: str) -> None:
    query = (
        'mutation { ask(model: "smollm2", question: "What payment methods do you accept?") '
        "{ answer citations { id source start end } confidence fromContext rung retrieved } }"
    )
    r = asked.post("/graphql", ask_key, json={"query": query})
    assert r.status_code == 200, r.text
    data = r.json()["data"]["ask"]
    assert data["answer"] and data["rung"] == "llamacpp:smollm2-135m-instruct"
    assert {c["id"] for c in data["citations"]} <= set(data["retrieved"])
    bad = asked.post("/graphql", ask_key, json={"query": query.replace("smollm2", "nope")})
    assert bad.json()["errors"][0]["extensions"]["status"] == 404


def test_ask_is_logged_in_the_ledger(asked: AppHarness, ask_key: str) -> None:
    asked.post("/v1/ask", ask_key, json={"question": RETURNS, "model": "smollm2"})
    asked.flush()
    db = Ledger(asked.state.ledger_url)
    try:
        rows = [row for row in db.rows() if row.endpoint == "ask"]
    finally:
        db.close()
    assert rows and rows[-1].model == "smollm2"
    assert rows[-1].rung == "llamacpp:smollm2-135m-instruct" and rows[-1].tokens_in > 0


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [
        ({"question": "  ", "model": "smollm2"}, 400, "question is empty"),
        ({"question": RETURNS, "model": "smollm2", "index": "nope"}, 404, "not served here"),
        ({"question": RETURNS, "model": "smollm2", "index": "missing"}, 400, "no index at"),
        (
            {"question": RETURNS, "model": "smollm2", "index": "other-model"},
            400,
            "another embedding model",
        ),
        ({"question": RETURNS, "model": "encoder:minilm-l6"}, 400, "does not generate"),
        ({"question": RETURNS, "model": "smollm2", "k": 0}, 400, "k"),
        ({"question": RETURNS, "model": "smollm2", "mode": "fuzzy"}, 400, "mode"),
        ({"question": RETURNS, "model": "smollm2", "tools": []}, 400, "unknown field"),
    ],
)
def test_bad_questions_get_one_json_error_and_the_server_keeps_serving(
    asked: AppHarness, ask_key: str, payload: dict[str, object], status: int, says: str
) -> None:
    r = asked.post("/v1/ask", ask_key, json=payload)
    assert r.status_code == status, r.text
    assert says in r.json()["error"]["message"]
    assert asked.get("/healthz").status_code == 200


def test_an_index_built_after_startup_is_opened_on_the_next_request(
    asked: AppHarness, ask_key: str, faq_index: Path
) -> None:
    payload = {"question": RETURNS, "model": "smollm2", "index": "later", "max_tokens": 8}
    assert asked.post("/v1/ask", ask_key, json=payload).status_code == 400
    shutil.copytree(faq_index, asked.state.config.base_dir / "built-later")
    r = asked.post("/v1/ask", ask_key, json=payload)
    assert r.status_code == 200, r.text
    assert r.json()["index"] == "later"


def test_ask_needs_a_key(asked: AppHarness) -> None:
    r = asked.post("/v1/ask", json={"question": RETURNS, "model": "smollm2"})
    assert r.status_code == 401
