"""Streaming through the server, over a real socket: chunks leave as the model makes them (read
by the official openai client), a client that goes away stops the generation and frees the
model, what a stream used reaches the ledger, and errors are JSON before the first chunk and an
error event after it."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from rung.serve import create_app, parse_config
from rung.serve.auth import create_key
from rung.serve.ledger import Ledger, UsageRow
from tests.models.test_openai import FlakyUpstreamDouble, Reply
from tests.serve.harness import AppHarness

POEM = [{"role": "user", "content": "Write a short poem about the sea."}]
SMOL = "llamacpp:smollm2-135m-instruct"


def _client(served: AppHarness, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=key, max_retries=0)


def _timed(stream: Iterator[Any]) -> list[tuple[float, Any]]:
    started = time.perf_counter()
    return [(time.perf_counter() - started, chunk) for chunk in stream]


def _rows(served: AppHarness, ledger: Ledger, key_id: str) -> list[UsageRow]:
    served.flush()
    return ledger.rows(key_id)


def _tokens_out_metric(served: AppHarness) -> float:
    for line in served.get("/metrics").text.splitlines():
        if line.startswith('rung_tokens_total{direction="out",model="smollm2"}'):
            return float(line.split()[-1])
    return 0.0


def test_chat_stream_arrives_token_by_token(served: AppHarness, ledger: Ledger) -> None:
    record, key = create_key(ledger, "streamer")
    client = _client(served, key)
    kwargs: dict[str, Any] = {"model": "smollm2", "messages": POEM, "max_tokens": 48}
    client.chat.completions.create(**kwargs)  # the prompt in the KV cache, as for the stream
    whole = client.chat.completions.create(**kwargs)
    tokens_out_before = _tokens_out_metric(served)

    arrivals = _timed(
        client.chat.completions.create(
            **kwargs, stream=True, stream_options={"include_usage": True}
        )
    )
    chunks = [c for _, c in arrivals]
    content = [(t, c) for t, c in arrivals if c.choices and c.choices[0].delta.content]
    assert len(content) >= 40, "the answer came in a few pieces, not token by token"
    first, last = content[0][0], content[-1][0]
    assert first < 0.5 * last, f"first chunk at {first:.3f} s, last at {last:.3f} s"
    text = "".join(c.choices[0].delta.content for _, c in content)
    assert text == whole.choices[0].message.content
    # role first; one finish chunk, with the rung object; then usage alone
    assert chunks[0].choices[0].delta.role == "assistant"
    [finish] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish.choices[0].finish_reason == whole.choices[0].finish_reason == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == whole.usage.model_dump()
    rung = (finish.model_extra or {})["rung"]
    assert rung["answered_by"] == SMOL
    assert rung["cost_usd"] == pytest.approx(whole.usage.total_tokens * 1000 / 1e6)
    # the ledger and the metrics have the stream's usage
    stream_row = _rows(served, ledger, record.id)[-1]
    assert (stream_row.endpoint, stream_row.status, stream_row.rung) == (
        "chat.completions",
        200,
        SMOL,
    )
    assert (stream_row.tokens_in, stream_row.tokens_out) == (
        whole.usage.prompt_tokens,
        whole.usage.completion_tokens,
    )
    assert stream_row.cost_usd == pytest.approx(rung["cost_usd"])
    assert _tokens_out_metric(served) - tokens_out_before == whole.usage.completion_tokens


def test_completions_stream_arrives_token_by_token(served: AppHarness, key: str) -> None:
    client = _client(served, key)
    kwargs: dict[str, Any] = {
        "model": "smollm2",
        "prompt": "Write a short poem about the moon.",
        "max_tokens": 32,
    }
    client.completions.create(**kwargs)
    whole = client.completions.create(**kwargs)
    arrivals = _timed(
        client.completions.create(**kwargs, stream=True, stream_options={"include_usage": True})
    )
    content = [(t, c) for t, c in arrivals if c.choices and c.choices[0].text]
    assert len(content) >= 24
    assert content[0][0] < 0.5 * content[-1][0]
    assert "".join(c.choices[0].text for _, c in content) == whole.choices[0].text
    usage = arrivals[-1][1].usage
    assert usage is not None and usage.model_dump() == whole.usage.model_dump()


def test_a_client_that_leaves_stops_the_generation(
    served: AppHarness, ledger: Ledger, fpb_path: Path
) -> None:
    record, key = create_key(ledger, "leaver")
    headers = {"Authorization": f"Bearer {key}"}
    classify = {"model": "smollm2", "input": "Operating profit fell to EUR 1.2 mn."}
    short: dict[str, Any] = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name three colours."}],
        "max_tokens": 10,
    }
    long = {"model": "smollm2", "messages": POEM, "max_tokens": 1000, "stream": True}
    with httpx.Client(base_url=served.base_url, headers=headers, timeout=60) as http:
        before = http.post("/v1/classify", json=classify).json()["data"][0]
        http.post("/v1/chat/completions", json=short)
        expected = http.post("/v1/chat/completions", json=short).json()
        texts = 0
        with http.stream("POST", "/v1/chat/completions", json=long) as r:
            assert r.status_code == 200
            for line in r.iter_lines():
                if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get(
                    "content"
                ):
                    texts += 1
                    if texts == 2:
                        break  # leaving the block closes the connection
        left = time.perf_counter()
        again = http.post("/v1/chat/completions", json=short).json()
        waited = time.perf_counter() - left
        after = http.post("/v1/classify", json=classify).json()["data"][0]
    # 1000 tokens take several seconds even on a fast machine; the model was free at once
    assert waited < 3, f"the next request waited {waited:.1f} s"
    assert again["choices"][0]["message"] == expected["choices"][0]["message"]
    assert after["label"] == before["label"]
    assert after["scores"] == pytest.approx(before["scores"], abs=1e-5)
    # what the stream generated before the client left is what it used
    rows = _rows(served, ledger, record.id)
    assert [r.endpoint for r in rows] == ["classify"] + ["chat.completions"] * 4 + ["classify"]
    stream_row = rows[3]
    assert stream_row.tokens_in > 10
    assert 2 <= stream_row.tokens_out < 100, "the generation ran on after the client left"
    assert stream_row.cost_usd == pytest.approx(
        (stream_row.tokens_in + stream_row.tokens_out) * 1000 / 1e6
    )
    assert 'rung_queue_depth{model="smollm2"} 0.0' in served.get("/metrics").text


def test_stream_errors_before_the_first_chunk_are_json(served: AppHarness, key: str) -> None:
    r = served.post(
        "/v1/chat/completions",
        key,
        json={
            "model": "smollm2",
            "messages": [{"role": "user", "content": "x" * 3000}],
            "stream": True,
        },
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/json"
    assert r.json()["error"]["code"] == "input_too_long"


def test_a_classifier_streams_its_label(served: AppHarness, key: str) -> None:
    chunks = list(
        _client(served, key).chat.completions.create(
            model="cascade:sentiment",
            messages=[{"role": "user", "content": "Net profit fell by 40 %."}],
            stream=True,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text in {"negative", "neutral", "positive"}
    [finish] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert (finish.model_extra or {})["rung"]["label"] == text


# --- through an openai rung: upstream errors before and after the first chunk -----------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[FlakyUpstreamDouble]:
    with FlakyUpstreamDouble() as double:
        yield double


@pytest.fixture(scope="module")
def gateway(
    upstream: FlakyUpstreamDouble, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[AppHarness, openai.OpenAI]]:
    """A server with one openai rung in front of the scripted upstream, and a client of it."""
    folder = tmp_path_factory.mktemp("gateway")
    ledger_url = f"sqlite:///{folder / 'usage.db'}"
    config = parse_config(
        {
            "models": [
                {
                    "id": "openai:double",
                    "name": "upstream",
                    "options": {"base_url": upstream.base_url, "max_retries": 0},
                }
            ]
        },
        base_dir=folder,
    )
    harness = AppHarness(create_app(config, ledger_url=ledger_url)).start(http=True)
    keys = Ledger(ledger_url)
    try:
        key = create_key(keys, "gateway")[1]
        yield harness, openai.OpenAI(base_url=f"{harness.base_url}/v1", api_key=key, max_retries=0)
    finally:
        keys.close()
        harness.stop()


def test_upstream_stream_passes_through_chunk_by_chunk(
    gateway: tuple[AppHarness, openai.OpenAI], upstream: FlakyUpstreamDouble
) -> None:
    upstream.script = [Reply(chunk_delay_s=0.05)]
    client = gateway[1]
    arrivals = _timed(
        client.chat.completions.create(
            model="upstream",
            messages=[{"role": "user", "content": "one two three four five six"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    content = [(t, c) for t, c in arrivals if c.choices and c.choices[0].delta.content]
    assert [c.choices[0].delta.content for _, c in content] == [
        "one",
        " two",
        " three",
        " four",
        " five",
        " six",
    ]
    assert content[-1][0] - content[0][0] > 0.2  # as the upstream sent them, 50 ms apart
    usage = arrivals[-1][1].usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (11, 6)


def test_upstream_error_before_the_first_chunk_is_a_json_502(
    gateway: tuple[AppHarness, openai.OpenAI], upstream: FlakyUpstreamDouble
) -> None:
    upstream.script = [Reply(500)]
    client = gateway[1]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="upstream", messages=[{"role": "user", "content": "x"}], stream=True
        )
    assert info.value.status_code == 502
    assert info.value.response.headers["content-type"] == "application/json"


def test_upstream_error_mid_stream_is_an_error_event(
    gateway: tuple[AppHarness, openai.OpenAI], upstream: FlakyUpstreamDouble
) -> None:
    harness, client = gateway
    upstream.script = [Reply(error_after=2), Reply(error_after=2)]
    body = {
        "model": "upstream",
        "messages": [{"role": "user", "content": "one two three four"}],
        "stream": True,
    }
    headers = {"Authorization": f"Bearer {client.api_key}"}
    with httpx.Client(base_url=harness.base_url, headers=headers, timeout=30) as http:
        r = http.post("/v1/chat/completions", json=body)
    events = [json.loads(e.removeprefix("data: ")) for e in r.text.split("\n\n") if e]
    assert r.status_code == 200
    assert [e["choices"][0]["delta"].get("content") for e in events[1:3]] == ["one", " two"]
    assert events[-1]["error"]["type"] == "upstream_error"
    assert "failed mid-answer" in events[-1]["error"]["message"]
    assert "[DONE]" not in r.text
    # the official client raises it, after the chunks before it
    seen: list[str] = []
    with pytest.raises(openai.APIError, match="failed mid-answer"):
        for chunk in client.chat.completions.create(**body):
            seen.append(chunk.choices[0].delta.content or "")
    assert seen == ["", "one", " two"]
