"""The REST and GraphQL endpoints, in-process through the real app (httpx's ASGI transport)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from tests.serve.conftest import LABELS, fpb_texts
from tests.serve.harness import AppHarness


def test_classify_one_text_with_the_trained_encoder(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/classify",
        key,
        json={
            "model": "sentiment",
            "input": "Operating profit fell to EUR 1.2 mn from EUR 9.8 mn.",
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "sentiment"
    [item] = body["data"]
    assert item["label"] == "negative"
    assert set(item["scores"]) == set(LABELS)
    assert sum(item["scores"].values()) == pytest.approx(1.0)
    assert item["confidence"] == pytest.approx(item["scores"]["negative"])
    assert item["rung"] == "encoder:minilm-l6"
    assert item["climbed_from"] == []
    assert item["latency_ms"] > 0
    assert item["cost_usd"] == 0.0  # self-hosted, no price set
    assert body["usage"]["prompt_tokens"] > 5


def test_classify_batch_keeps_order(served: AppHarness, key: str, fpb_path: Path) -> None:
    texts = fpb_texts(fpb_path, 6)
    r = served.post("/v1/classify", key, json={"model": "sentiment", "input": texts})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [d["index"] for d in data] == list(range(6))
    one = served.post("/v1/classify", key, json={"model": "sentiment", "input": texts[3]})
    # a text embedded alone or in a padded batch differs in the last float digits
    assert one.json()["data"][0]["scores"] == pytest.approx(data[3]["scores"], abs=1e-5)


def test_classify_with_smollm2_is_priced(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/classify",
        key,
        json={"model": "smollm2", "input": ["Net sales rose 30 % to a record EUR 2.1 bn."]},
    )
    assert r.status_code == 200, r.text
    [item] = r.json()["data"]
    assert item["label"] in LABELS
    assert item["rung"] == "llamacpp:smollm2-135m-instruct"
    # the prompt's tokens at the configured $1000 per million
    assert item["cost_usd"] == pytest.approx(r.json()["usage"]["total_tokens"] * 1000 / 1e6)


def test_smollm2_takes_the_labels_of_the_request(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/classify",
        key,
        json={"model": "smollm2", "input": "I love this phone", "labels": ["happy", "sad"]},
    )
    assert r.status_code == 200, r.text
    assert set(r.json()["data"][0]["scores"]) == {"happy", "sad"}
    # the encoder knows only the labels it was trained on
    r = served.post(
        "/v1/classify",
        key,
        json={"model": "sentiment", "input": "I love this phone", "labels": ["happy", "sad"]},
    )
    assert r.status_code == 400
    assert "trained on" in r.json()["error"]["message"]


def test_cascade_answers_small_when_sure_and_climbs_when_not(
    served: AppHarness, key: str, fpb_path: Path
) -> None:
    texts = fpb_texts(fpb_path, 16, skip=40)
    alone = served.post("/v1/classify", key, json={"model": "sentiment", "input": texts}).json()
    sure = [d["confidence"] >= 0.9 for d in alone["data"]]
    assert any(sure) and not all(sure), "pick texts the encoder is sure and unsure of"
    r = served.post("/v1/classify", key, json={"model": "cascade:sentiment", "input": texts})
    assert r.status_code == 200, r.text
    for item, small, enc in zip(r.json()["data"], sure, alone["data"], strict=True):
        if small:
            assert item["rung"] == "encoder:minilm-l6"
            assert item["label"] == enc["label"]
            assert item["climbed_from"] == []
            assert item["cost_usd"] == pytest.approx(0.01 / 1000)
        else:
            assert item["rung"] == "llamacpp:smollm2-135m-instruct"
            assert item["climbed_from"] == ["encoder:minilm-l6"]
            assert item["cost_usd"] == pytest.approx((0.01 + 0.1) / 1000)
        assert item["top_rung_cost_usd"] == pytest.approx(0.1 / 1000)
    metrics = served.get("/metrics").text
    assert 'rung_answers_total{model="cascade:sentiment",rung="encoder:minilm-l6"}' in metrics
    assert (
        'rung_answers_total{model="cascade:sentiment",rung="llamacpp:smollm2-135m-instruct"}'
        in metrics
    )


def test_chat_completion_generates(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/chat/completions",
        key,
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "Name a colour."}],
            "max_tokens": 12,
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"].strip()
    assert choice["finish_reason"] in {"stop", "length"}
    assert body["usage"]["completion_tokens"] <= 12
    assert body["usage"]["total_tokens"] == (
        body["usage"]["prompt_tokens"] + body["usage"]["completion_tokens"]
    )


def test_chat_streams_openai_chunks(served: AppHarness, key: str) -> None:
    payload = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 12,
    }
    whole = served.post("/v1/chat/completions", key, json=payload).json()
    r = served.post(
        "/v1/chat/completions",
        key,
        json=payload | {"stream": True, "stream_options": {"include_usage": True}},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    chunks = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == whole["choices"][0]["message"]["content"]
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"] == whole["usage"]


def test_chat_with_a_classifier_replies_with_the_label(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/chat/completions",
        key,
        json={
            "model": "sentiment",
            "messages": [{"role": "user", "content": "Net profit fell by 40 %."}],
        },
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "negative"
    assert body["rung"]["answered_by"] == "encoder:minilm-l6"
    assert body["rung"]["label"] == "negative"


def test_completions(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/completions",
        key,
        json={"model": "smollm2", "prompt": "The capital of France is", "max_tokens": 8},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"].strip()
    streamed = served.post(
        "/v1/completions",
        key,
        json={
            "model": "smollm2",
            "prompt": "The capital of France is",
            "max_tokens": 8,
            "stream": True,
        },
    )
    events = [e for e in streamed.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]"
    pieces = [json.loads(e.removeprefix("data: ")) for e in events[:-1]]
    assert "".join(p["choices"][0]["text"] for p in pieces) == body["choices"][0]["text"]


def test_embeddings_float_and_base64(served: AppHarness, key: str) -> None:
    texts = ["Profit rose.", "Profit fell."]
    r = served.post("/v1/embeddings", key, json={"model": "sentiment", "input": texts})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    vectors = np.array([d["embedding"] for d in data])
    assert vectors.shape == (2, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    b64 = served.post(
        "/v1/embeddings",
        key,
        json={"model": "sentiment", "input": texts, "encoding_format": "base64"},
    ).json()["data"]
    decoded = np.frombuffer(base64.b64decode(b64[0]["embedding"]), dtype="<f4")
    assert decoded == pytest.approx(vectors[0], abs=1e-6)
    # a model without embeddings says so
    r = served.post("/v1/embeddings", key, json={"model": "smollm2", "input": "x"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "model_cannot_embed"


def test_models_and_health(served: AppHarness, key: str) -> None:
    r = served.get("/v1/models", key)
    assert r.status_code == 200
    ids = [m["id"] for m in r.json()["data"]]
    assert ids == ["sentiment", "smollm2", "cascade:sentiment"]
    one = served.get("/v1/models/cascade:sentiment", key).json()
    assert one["rung"]["cascade"] is True
    assert served.get("/healthz").json()["status"] == "ok"  # no key needed


def test_graphql_queries_and_mutations(served: AppHarness, key: str) -> None:
    query = """{ models { name modelId canGenerate labels }
                 runs { name title labels rungs { model accuracy latencyP50Ms } } }"""
    r = served.post("/graphql", key, json={"query": query})
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert [m["name"] for m in data["models"]] == ["sentiment", "smollm2", "cascade:sentiment"]
    assert data["runs"][0]["title"] == "fpb sentiment"
    assert data["runs"][0]["rungs"][0]["accuracy"] == 0.9
    mutation = """mutation { classify(model: "sentiment", input: ["Sales fell 30 %."]) {
                     label confidence rung costUsd }
                   generate(model: "smollm2", prompt: "Say yes.", maxTokens: 4) {
                     text tokensOut rung } }"""
    r = served.post("/graphql", key, json={"query": mutation})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body
    assert body["data"]["classify"][0]["label"] == "negative"
    assert body["data"]["generate"]["tokensOut"] <= 4
    usage = served.post(
        "/graphql", key, json={"query": "{ usage { requests costUsd byModel { model requests } } }"}
    )
    assert usage.json()["data"]["usage"]["requests"] > 0
    # an unknown model is a GraphQL error with REST's status and code
    r = served.post(
        "/graphql",
        key,
        json={"query": 'mutation { classify(model: "nope", input: ["x"]) { label } }'},
    )
    [error] = r.json()["errors"]
    assert error["extensions"]["status"] == 404
    assert error["extensions"]["code"] == "model_not_found"


def test_metrics_count_requests_tokens_and_batches(served: AppHarness, key: str) -> None:
    served.post("/v1/classify", key, json={"model": "sentiment", "input": "Profit rose."})
    served.post("/v1/classify", key, json={"model": "smollm2", "input": "Profit rose."})
    text = served.get("/metrics").text
    assert 'rung_requests_total{endpoint="classify",model="sentiment",status="200"}' in text
    assert (
        'rung_request_duration_seconds_bucket{endpoint="classify",le="0.1",model="sentiment"}'
        in text
    )
    assert 'rung_tokens_total{direction="in",model="sentiment"}' in text
    assert 'rung_queue_depth{model="smollm2"} 0.0' in text
    assert 'rung_batches_total{model="sentiment"}' in text
    assert 'rung_cost_usd_total{model="smollm2"}' in text
