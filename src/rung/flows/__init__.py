"""Flows: small YAML pipelines of retrieve / prompt / model / classify / extract / route /
http / code steps, checked before they run, versioned by the hash of their file, and run with
a trace of every step.

    flow = load_flow(Path("flows/faq.yaml"))      # SpecError naming file:line when broken
    flow.input_schema()                           # JSON schema of its inputs, for forms
    runner = FlowRunner(flow)
    result = await runner.run({"question": "..."})
    result.to_json()    # {flow, version, inputs, outputs, trace: [{id, latency_ms, ...}], ...}

``FlowLibrary`` holds several flows by name (what ``rung serve`` serves); ``flow:<name>`` is a
model id (``rung.flows.model``).
"""

from rung.flows.check import Flow, check_flow, load_flow
from rung.flows.library import FlowInfo, FlowLibrary
from rung.flows.run import FlowResult, FlowRunner, FlowStepError, StepTrace, coerce_inputs
from rung.flows.spec import FlowSpec

__all__ = [
    "Flow",
    "FlowInfo",
    "FlowLibrary",
    "FlowResult",
    "FlowRunner",
    "FlowSpec",
    "FlowStepError",
    "StepTrace",
    "check_flow",
    "coerce_inputs",
    "load_flow",
]
