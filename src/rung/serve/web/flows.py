"""What the flows page needs from the server's flows: each flow's name, description and input
fields, and a way to run one with its inputs that returns the answer and a trace per step.

A small interface of its own, so the page does not depend on how flows are loaded and run;
``NoFlows`` is the catalog of a server that serves none.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from rung.errors import SpecError

__all__ = ["FlowCatalog", "FlowForm", "NoFlows"]


@dataclass(frozen=True)
class FlowForm:
    name: str
    description: str = ""
    inputs: list[str] = field(default_factory=list)


class FlowCatalog(Protocol):
    def describe(self) -> list[FlowForm]:
        """The flows the page offers, in the order it lists them."""
        ...

    async def run(self, name: str, inputs: dict[str, str]) -> dict[str, Any]:
        """Run flow ``name``: ``{"output": ..., "steps": [{"name", "kind", "latency_ms",
        "output", ...}]}``, or a RungError saying what is wrong with the inputs."""
        ...


class NoFlows:
    def describe(self) -> list[FlowForm]:
        return []

    async def run(self, name: str, inputs: dict[str, str]) -> dict[str, Any]:
        raise SpecError(f"no flow {name!r} is served here: this server serves no flows")
