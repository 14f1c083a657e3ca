"""Flows run for real: retrieve -> prompt -> model over an index of the e-commerce FAQ with the
bundled SmolLM2, routes, http calls to a real local service, and failing steps."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.errors import DataError
from rung.flows import FlowRunner, FlowStepError, load_flow
from rung.rag import Embedder, build_index
from rung.rag.search import INDEX_DB
from rung.rag.stores import open_store, sqlite_url
from tests.flows.conftest import LLAMA_OPTIONS, SMOL, write_flow
from tests.flows.http_double import running_service_double


@pytest.fixture
def faq_index(tmp_path: Path, shared_data: Path, hash_embedder: str) -> Path:
    """The 79 FAQ answers indexed with the hash embedder double (the embedder is not under
    test; keyword search finds the answers)."""
    out = tmp_path / "faq-index"
    out.mkdir()
    faq = shared_data / "ecommerce_faq" / "Ecommerce_FAQ_Chatbot_dataset.json"
    store = open_store(sqlite_url(out / INDEX_DB))
    embedder = Embedder(hash_embedder)
    build_index([faq], store, embedder=embedder)
    store.close()
    embedder.close()
    return out


@pytest.fixture
def service() -> Iterator[str]:
    with running_service_double() as url:
        yield url


def run(runner: FlowRunner, **inputs: object) -> dict[str, object]:
    async def go() -> dict[str, object]:
        try:
            return (await runner.run(inputs)).to_json()
        finally:
            await runner.aclose()

    return asyncio.run(go())


def test_retrieve_prompt_model_over_the_faq(tmp_path: Path, faq_index: Path) -> None:
    path = write_flow(
        tmp_path,
        f"""
        name: faq
        inputs:
          question: {{type: string, description: What the customer asks}}
        steps:
          - id: hits
            type: retrieve
            index: {faq_index.name}
            query: "{{{{inputs.question}}}}"
            k: 2
            mode: keyword
          - id: ask
            type: prompt
            template: |
              Answer the question from these passages.
              {{{{hits.output}}}}
              Question: {{{{inputs.question}}}}
          - id: answer
            type: model
            model: {SMOL}
            options: {LLAMA_OPTIONS}
            prompt: "{{{{ask.output}}}}"
            max_tokens: 24
        outputs:
          answer: "{{{{answer.output}}}}"
        """,
    )
    flow = load_flow(path)
    result = run(FlowRunner(flow), question="How can I track my order?")
    assert result["flow"] == "faq" and result["version"] == flow.version
    hits, ask, answer = result["trace"]  # type: ignore[misc]
    assert [t["id"] for t in (hits, ask, answer)] == ["hits", "ask", "answer"]
    assert all(t["status"] == "ok" and t["latency_ms"] > 0 for t in (hits, ask, answer))
    assert "Order History" in hits["output"][0]["text"]
    assert "[1] " in ask["output"] and "Order History" in ask["output"]
    assert answer["model"] == SMOL and answer["tokens_in"] > 20 and 0 < answer["tokens_out"] <= 24
    assert answer["cost_usd"] > 0  # machine time at the default machine's hourly price
    assert result["outputs"] == {"answer": answer["output"]} and answer["output"]
    assert result["tokens_in"] == answer["tokens_in"]


CLASSIFY_ROUTE = f"""
name: triage
inputs:
  text: string
steps:
  - id: mood
    type: classify
    model: {SMOL}
    options: {LLAMA_OPTIONS}
    text: "{{{{inputs.text}}}}"
    labels: [negative, positive]
    instructions: "Is this customer happy or unhappy? Answer with one word: {{labels}}."
  - id: pick
    type: route
    by: "{{{{mood.output}}}}"
    cases: {{negative: apologise, positive: thank}}
  - id: apologise
    type: prompt
    template: "sorry"
  - id: thank
    type: prompt
    template: "thanks"
  - id: reply
    type: code
    expr: "upper(apologise.output or thank.output)"
outputs:
  reply: "{{{{reply.output}}}}"
  label: "{{{{mood.output}}}}"
"""


def test_route_by_label_runs_one_branch(tmp_path: Path) -> None:
    runner = FlowRunner(load_flow(write_flow(tmp_path, CLASSIFY_ROUTE)))
    result = run(runner, text="Terrible service, my parcel never arrived and nobody answers.")
    trace = {t["id"]: t for t in result["trace"]}  # type: ignore[attr-defined]
    label = result["outputs"]["label"]  # type: ignore[index]
    assert label in ("negative", "positive") and trace["mood"]["confidence"] is not None
    chosen, other = ("apologise", "thank") if label == "negative" else ("thank", "apologise")
    assert trace["pick"]["output"] == chosen
    assert trace[chosen]["status"] == "ok" and trace[other]["status"] == "skipped"
    # the join reads both branches and runs: one of them ran
    assert result["outputs"]["reply"] == trace[chosen]["output"].upper()  # type: ignore[index]


def test_route_by_threshold(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        name: gate
        inputs:
          n: integer
        steps:
          - {id: score, type: code, expr: "inputs.n / 10"}
          - {id: pick, type: route, by: "{{score.output}}", threshold: 0.5, above: high, below: low}
          - {id: high, type: prompt, template: "high {{score.output}}"}
          - {id: low, type: prompt, template: "low {{score.output}}"}
          - {id: after_low, type: prompt, template: "after {{low.output}}"}
        """,
    )
    flow = load_flow(path)
    high = run(FlowRunner(flow), n="7")  # text, as from a command line: converted
    assert high["outputs"] == {"output": "high 0.7"}
    statuses = {t["id"]: t["status"] for t in high["trace"]}  # type: ignore[attr-defined]
    assert statuses == {
        "score": "ok",
        "pick": "ok",
        "high": "ok",
        "low": "skipped",
        "after_low": "skipped",
    }
    low = run(FlowRunner(flow), n=2)
    assert low["outputs"] == {"output": "after low 0.2"}
    with pytest.raises(DataError, match="'n' of flow 'gate' is a integer"):
        run(FlowRunner(flow), n="many")
    with pytest.raises(DataError, match="needs the input 'n'"):
        run(FlowRunner(flow))


def http_flow(tmp_path: Path, url: str, extra: str = "") -> FlowRunner:
    path = write_flow(
        tmp_path,
        f"""
        name: call
        inputs:
          q: string
        steps:
          - id: call
            type: http
            method: POST
            url: "{url}"
            allowed_hosts: [127.0.0.1]
            headers: {{x-flow: "{{{{inputs.q}}}}"}}
            json: {{question: "{{{{inputs.q}}}}", n: 2}}
            timeout_s: 0.5
            {extra}
          - id: said
            type: prompt
            template: "got {{{{call.output.body.question}}}}"
        """,
    )
    return FlowRunner(load_flow(path))


def test_http_step_calls_a_real_service(tmp_path: Path, service: str) -> None:
    result = run(http_flow(tmp_path, f"{service}/echo"), q="where is it?")
    call = result["trace"][0]  # type: ignore[index]
    assert call["output"] == {
        "method": "POST",
        "query": {},
        "body": {"question": "where is it?", "n": 2},
        "header": "where is it?",
    }
    assert result["outputs"] == {"output": "got where is it?"}


@pytest.mark.parametrize(
    ("route", "status", "message"),
    [
        ("/slow", 504, "did not answer within 0.5 s"),
        ("/broken", 502, "answered HTTP 500"),
        ("/away", 502, "answered HTTP 307"),
    ],
)
def test_http_step_failures_name_the_step(
    tmp_path: Path, service: str, route: str, status: int, message: str
) -> None:
    with pytest.raises(FlowStepError) as info:
        run(http_flow(tmp_path, f"{service}{route}"), q="x")
    assert info.value.step == "call" and info.value.status == status
    assert str(info.value).startswith("flow 'call', step 'call': ") and message in str(info.value)


def test_http_limits(tmp_path: Path, service: str) -> None:
    with pytest.raises(FlowStepError, match="over 1,000 bytes"):
        run(http_flow(tmp_path, f"{service}/big", "max_response_bytes: 1000"), q="x")
    # the host comes from an input: checked once it is filled in
    runner = http_flow(tmp_path, "http://{{inputs.q}}/echo")
    with pytest.raises(FlowStepError, match=r"not an http\(s\) URL on an allowed host") as info:
        run(runner, q="169.254.169.254")
    assert info.value.status == 400


def test_a_failing_code_step_names_itself(tmp_path: Path) -> None:
    path = write_flow(
        tmp_path,
        """
        name: div
        inputs: {n: integer}
        steps:
          - {id: ratio, type: code, expr: "10 / inputs.n"}
        """,
    )
    assert run(FlowRunner(load_flow(path)), n=4)["outputs"] == {"output": 2.5}
    with pytest.raises(FlowStepError, match="step 'ratio': ZeroDivisionError") as info:
        run(FlowRunner(load_flow(path)), n=0)
    assert info.value.status == 400


def extract_flow(tmp_path: Path, order_id_schema: str) -> FlowRunner:
    path = write_flow(
        tmp_path,
        f"""
        name: order
        inputs:
          message: string
        steps:
          - id: order
            type: extract
            model: {SMOL}
            options: {LLAMA_OPTIONS}
            text: "{{{{inputs.message}}}}"
            schema:
              type: object
              properties:
                order_id: {order_id_schema}
              required: [order_id]
            max_tokens: 40
          - id: say
            type: prompt
            template: "Looking up order {{{{order.output.order_id}}}}"
        """,
    )
    return FlowRunner(load_flow(path))


MESSAGE = "Hello, my order number is A-12345 and it has not arrived."


def test_extract_reads_fields_and_checks_them_against_the_schema(tmp_path: Path) -> None:
    result = run(extract_flow(tmp_path, "{type: string}"), message=MESSAGE)
    assert result["trace"][0]["output"] == {"order_id": "A-12345"}  # type: ignore[index]
    assert result["outputs"] == {"output": "Looking up order A-12345"}
    # the same answer against a schema it does not fit: a 422 naming the step and the field
    with pytest.raises(FlowStepError, match="does not fit the schema: order_id: ") as info:
        run(extract_flow(tmp_path, "{type: string, pattern: '^[0-9]+$'}"), message=MESSAGE)
    assert info.value.step == "order" and info.value.status == 422
