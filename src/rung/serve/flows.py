"""Flows served as endpoints: ``GET /v1/flows`` (each flow's name, version, input schema and
steps) and ``POST /v1/flows/<name>/run`` with ``{"inputs": {...}}``, answered with the outputs,
the flow's version and the trace of every step.

The flow files named in the serve config's ``flows:`` are checked when the app is made, so a
broken one stops ``rung serve`` before it listens (the error names file:line); their models
load in the lifespan, with the served models. A step that fails answers a JSON error naming
the step (``rung.serve.errors``), and the server keeps serving.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from rung.flows import FlowLibrary, FlowResult
from rung.serve.config import ServeConfig
from rung.serve.rest import _slot, _state, handles_errors
from rung.serve.state import ServeState, UsageSlot
from rung.serve.wire import read_json

__all__ = ["FlowRunBody", "list_flows", "load_library", "run_flow", "run_recorded"]


class FlowRunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, Any] = Field(default_factory=dict, description="Input name -> value.")


def load_library(config: ServeConfig) -> FlowLibrary:
    """The config's flows, checked (models are not loaded yet)."""
    return FlowLibrary.load(config.resolve(p) for p in config.flows)


async def run_recorded(
    state: ServeState, name: str, inputs: dict[str, Any], slot: UsageSlot
) -> FlowResult:
    """Run a flow and note what it used for the gateway's ledger and metrics."""
    runner = state.flows.get(name)
    slot.model = f"flow:{name}"
    state.check_inputs([str(v) for v in inputs.values()] or [""], "inputs")
    result = await runner.run(inputs)
    tokens_in, tokens_out = result.tokens
    slot.add(tokens_in, tokens_out, result.cost_usd or 0.0)
    slot.rung = f"flow:{name}@{result.version}"
    return result


@handles_errors
async def list_flows(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"object": "list", "data": [f.to_json() for f in state.flows.list()]})


@handles_errors
async def run_flow(request: Request) -> Response:
    state = _state(request)
    name = request.path_params["name"]
    state.flows.get(name)  # an unknown flow is a 404 before the body is read
    body = await read_json(request, FlowRunBody, state.config.limits)
    result = await run_recorded(state, name, body.inputs, _slot(request))
    return JSONResponse(result.to_json())
