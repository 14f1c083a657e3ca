"""Flows served: POST /v1/flows/<name>/run and GraphQL's runFlow on a real app, a failing step
as a JSON error naming the step (and the server still serving), and a broken flow file that
stops the server before it starts, naming file:line."""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from rung.errors import SpecError
from rung.serve import create_app, parse_config
from tests.flows.conftest import flow_backend
from tests.serve.harness import AppHarness

SMOL = "llamacpp:smollm2-135m-instruct"

GREETING = f"""
name: greet
description: A one-line greeting for a customer
inputs:
  customer: {{type: string, description: The customer's first name}}
  orders: {{type: integer, default: 1}}
steps:
  - id: ask
    type: prompt
    template: "Write one short friendly sentence greeting {{{{inputs.customer}}}}."
  - id: reply
    type: model
    model: {SMOL}
    options: {{n_threads: 1}}
    prompt: "{{{{ask.output}}}}"
    max_tokens: 16
  - id: per_order
    type: code
    expr: "100 / inputs.orders"
outputs:
  greeting: "{{{{reply.output}}}}"
  share: "{{{{per_order.output}}}}"
"""


KEYWORDS = """
name: keywords
inputs:
  text: string
steps:
  - id: label
    type: code
    expr: "'positive' if 'good' in lower(inputs.text) else 'negative'"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppHarness]:
    root = tmp_path_factory.mktemp("flows-serve")
    write(root, "greet.yaml", GREETING)
    keywords = write(root, "keywords.yaml", KEYWORDS)
    config = parse_config(
        {
            "flows": ["greet.yaml"],
            # a flow is also a rung: served as a model, through /v1/classify
            "models": [
                {"id": f"flow:{keywords}", "name": "keywords", "labels": ["negative", "positive"]}
            ],
            "auth": {"required": False},
        },
        base_dir=root,
    )
    with flow_backend():
        harness = AppHarness(create_app(config, ledger_url=f"sqlite:///{root / 'ledger.db'}"))
        harness.start()
        try:
            yield harness
        finally:
            harness.stop()


def test_list_and_run_a_flow(app: AppHarness) -> None:
    listed = app.get("/v1/flows").json()["data"]
    assert [f["name"] for f in listed] == ["greet"]
    assert listed[0]["inputs"]["required"] == ["customer"]
    assert [s["id"] for s in listed[0]["steps"]] == ["ask", "reply", "per_order"]

    r = app.post("/v1/flows/greet/run", json={"inputs": {"customer": "Ada", "orders": 4}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["flow"] == "greet" and body["version"] == listed[0]["version"]
    assert body["outputs"]["greeting"] and body["outputs"]["share"] == 25.0
    reply = body["trace"][1]
    assert reply["model"] == SMOL and reply["tokens_out"] > 0 and reply["latency_ms"] > 0
    assert body["tokens_in"] == reply["tokens_in"]


def test_graphql_run_flow(app: AppHarness) -> None:
    mutation = """mutation { runFlow(name: "greet", inputs: {customer: "Grace"}) {
        flow version outputs trace latencyMs } }"""
    r = app.post("/graphql", json={"query": mutation})
    data = r.json()
    assert "errors" not in data, data
    run = data["data"]["runFlow"]
    assert run["flow"] == "greet" and run["outputs"]["share"] == 100.0
    assert [t["id"] for t in run["trace"]] == ["ask", "reply", "per_order"]
    flows = app.post("/graphql", json={"query": "{ flows }"}).json()["data"]["flows"]
    assert flows[0]["name"] == "greet"


def test_a_failing_step_is_a_json_error_and_the_server_keeps_serving(app: AppHarness) -> None:
    r = app.post("/v1/flows/greet/run", json={"inputs": {"customer": "Ada", "orders": 0}})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "flow_step_failed" and error["param"] == "per_order"
    assert "step 'per_order'" in error["message"] and "ZeroDivisionError" in error["message"]

    r = app.post(
        "/graphql",
        json={
            "query": 'mutation { runFlow(name: "greet", inputs: {customer: "A", orders: 0}) { flow } }'
        },
    )
    assert r.json()["errors"][0]["extensions"]["code"] == "flow_step_failed"

    r = app.post("/v1/flows/greet/run", json={"inputs": {"customr": "Ada"}})
    assert r.status_code == 400 and "no input 'customr'" in r.json()["error"]["message"]
    r = app.post("/v1/flows/greeet/run", json={"inputs": {}})
    assert r.status_code == 404 and "did you mean 'greet'" in r.json()["error"]["message"]
    r = app.post("/v1/flows/greet/run", json={"input": {}})
    assert r.status_code == 400 and "unknown field 'input'" in r.json()["error"]["message"]

    r = app.post("/v1/flows/greet/run", json={"inputs": {"customer": "Ada", "orders": 2}})
    assert r.status_code == 200 and r.json()["outputs"]["share"] == 50.0


def test_a_broken_flow_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    write(
        tmp_path,
        "broken.yaml",
        """
        name: broken
        inputs: {q: string}
        steps:
          - id: a
            type: prompt
            template: "{{b.output}}"
        """,
    )
    config = parse_config(
        {"flows": ["broken.yaml"], "auth": {"required": False}}, base_dir=tmp_path
    )
    with pytest.raises(SpecError, match=r"broken\.yaml:6: \{\{b\.output\}\}: unknown step 'b'"):
        create_app(config, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")
    # a flow whose index was never built: refused too, before any model loads
    write(
        tmp_path,
        "unbuilt.yaml",
        """
        name: unbuilt
        inputs: {q: string}
        steps:
          - {id: hits, type: retrieve, index: indexes/none, query: "{{inputs.q}}"}
        """,
    )
    config = parse_config(
        {"flows": ["unbuilt.yaml"], "auth": {"required": False}}, base_dir=tmp_path
    )
    with pytest.raises(SpecError, match=r"unbuilt\.yaml:4: step 'hits': no index at "):
        create_app(config, ledger_url=f"sqlite:///{tmp_path / 'ledger.db'}")


def test_concurrent_runs_share_the_flow_model(app: AppHarness) -> None:
    async def many() -> list[int]:
        calls = [
            app.client.post("/v1/flows/greet/run", json={"inputs": {"customer": name}})
            for name in ("Ada", "Grace", "Alan", "Edsger")
        ]
        return [r.status_code for r in await asyncio.gather(*calls)]

    assert app.run(many()) == [200, 200, 200, 200]


def test_a_flow_served_as_a_model(app: AppHarness) -> None:
    r = app.post("/v1/classify", json={"model": "keywords", "input": ["a good day", "a bad day"]})
    assert r.status_code == 200, r.text
    assert [d["label"] for d in r.json()["data"]] == ["positive", "negative"]
