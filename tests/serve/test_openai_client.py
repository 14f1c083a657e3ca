"""The official openai client and a GraphQL client against a real uvicorn on loopback."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.serve.harness import AppHarness


@pytest.fixture(scope="module")
def client(served: AppHarness, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.base_url}/v1", api_key=key, max_retries=0)


def test_chat_completion(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="smollm2",
        messages=[{"role": "user", "content": "Name a fruit."}],
        max_tokens=10,
    )
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content
    assert completion.usage is not None and completion.usage.completion_tokens <= 10


def test_chat_completion_stream(client: openai.OpenAI) -> None:
    kwargs = {
        "model": "smollm2",
        "messages": [{"role": "user", "content": "Name a fruit."}],
        "max_tokens": 10,
    }
    whole = client.chat.completions.create(**kwargs)  # type: ignore[call-overload]
    stream = client.chat.completions.create(
        **kwargs, stream=True, stream_options={"include_usage": True}
    )  # type: ignore[call-overload]
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == whole.usage.total_tokens


def test_cascade_through_chat(client: openai.OpenAI) -> None:
    completion = client.chat.completions.create(
        model="cascade:sentiment",
        messages=[{"role": "user", "content": "Operating loss widened to EUR 5 mn."}],
    )
    assert completion.choices[0].message.content in {"negative", "neutral", "positive"}
    rung = (completion.model_extra or {})["rung"]
    assert rung["answered_by"] in {"encoder:minilm-l6", "llamacpp:smollm2-135m-instruct"}


def test_models_list(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["sentiment", "smollm2", "cascade:sentiment"]
    assert client.models.retrieve("smollm2").id == "smollm2"


def test_embeddings(client: openai.OpenAI) -> None:
    # the client asks for base64 unless told otherwise, and decodes it
    default = client.embeddings.create(model="sentiment", input=["Profit rose.", "Sales fell."])
    floats = client.embeddings.create(
        model="sentiment", input=["Profit rose.", "Sales fell."], encoding_format="float"
    )
    assert len(default.data) == 2 and len(default.data[0].embedding) == 384
    assert default.data[1].embedding == pytest.approx(floats.data[1].embedding, abs=1e-6)
    assert default.usage.prompt_tokens > 0


def test_errors_reach_the_client_typed(client: openai.OpenAI, served: AppHarness) -> None:
    with pytest.raises(openai.NotFoundError) as found:
        client.chat.completions.create(model="smollm", messages=[{"role": "user", "content": "x"}])
    assert "did you mean 'smollm2'" in str(found.value)
    bad = openai.OpenAI(base_url=f"{served.base_url}/v1", api_key="rk-nope-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.models.list()


def test_graphql_over_http(served: AppHarness, key: str) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=served.base_url, headers=headers, timeout=60) as http:
        r = http.post("/graphql", json={"query": "{ models { name canGenerate } }"})
        assert r.status_code == 200, r.text
        assert {"name": "smollm2", "canGenerate": True} in r.json()["data"]["models"]
        r = http.post(
            "/graphql",
            json={
                "query": 'mutation($t: [String!]!) { classify(model: "cascade:sentiment", input: $t)'
                " { label rung climbedFrom costUsd topRungCostUsd } }",
                "variables": {"t": ["Net profit fell 50 %.", "The company is based in Helsinki."]},
            },
        )
        assert r.status_code == 200, r.text
        answers = r.json()["data"]["classify"]
        assert len(answers) == 2
        assert all(a["topRungCostUsd"] == pytest.approx(0.0001) for a in answers)
        assert http.get("/healthz").json()["status"] == "ok"
        assert "rung_requests_total" in http.get("/metrics").text
