"""Several flows by name, for a server or a web page: list them, describe their inputs, run
one. Every file is checked when the library is made, so a broken flow stops a server before it
serves (the SpecError names file:line); models load in ``start``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.errors import ModelNotFoundError, SpecError, did_you_mean
from rung.flows.check import Flow, load_flow
from rung.flows.run import FlowResult, FlowRunner

__all__ = ["FlowInfo", "FlowLibrary"]


@dataclass(frozen=True)
class FlowInfo:
    """What a list of flows shows about one."""

    name: str
    version: str
    description: str | None
    path: str
    inputs: dict[str, Any]  # JSON schema
    steps: list[dict[str, str]]  # [{id, type}] in the order they run

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "path": self.path,
            "inputs": self.inputs,
            "steps": self.steps,
        }


class FlowLibrary:
    def __init__(self, flows: Iterable[Flow]) -> None:
        self.runners: dict[str, FlowRunner] = {}
        for flow in flows:
            if flow.name in self.runners:
                other = self.runners[flow.name].flow.path
                raise SpecError(f"{flow.path}: flow name {flow.name!r} is also the name of {other}")
            self.runners[flow.name] = FlowRunner(flow)

    @classmethod
    def load(cls, paths: Iterable[Path]) -> FlowLibrary:
        """The flows of ``paths``, each checked with what its steps use (models known, their
        files there, indexes built): a SpecError naming file:line, before anything loads."""
        library = cls(load_flow(p) for p in paths)
        for runner in library.runners.values():
            runner.check()
        return library

    def names(self) -> list[str]:
        return sorted(self.runners)

    def get(self, name: str) -> FlowRunner:
        runner = self.runners.get(name)
        if runner is None:
            raise ModelNotFoundError(
                f"no flow {name!r} here{did_you_mean(name, self.runners)}; flows: "
                f"{', '.join(self.names()) or 'none'} (GET /v1/flows)"
            )
        return runner

    def info(self, name: str) -> FlowInfo:
        flow = self.get(name).flow
        return FlowInfo(
            flow.name,
            flow.version,
            flow.spec.description,
            str(flow.path),
            flow.input_schema(),
            [{"id": s, "type": flow.step(s).type} for s in flow.order],
        )

    def list(self) -> list[FlowInfo]:
        return [self.info(n) for n in self.names()]

    async def run(self, name: str, inputs: Mapping[str, Any]) -> FlowResult:
        return await self.get(name).run(inputs)

    async def start(self) -> None:
        for runner in self.runners.values():
            await runner.astart()

    async def aclose(self) -> None:
        for runner in self.runners.values():
            await runner.aclose()
