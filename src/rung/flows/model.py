"""The ``flow`` backend: a flow served as one model, so that it can be compared with any other
rung (``rung compare``) and served (``rung serve``).

``flow:<name>`` names a flow file: a path (``flow:flows/sentiment.yaml``), or a name found as
``<name>.yaml`` in the ``dir`` option's folder (default: ``flows/``). As a classifier, the
request's text is given as the flow's first input (or the ``input`` option's), and the answer
is the last step that ran: a classify step's label and confidence, or any other output taken as
a label when it is one. As a generator, the last user message is the input and the answer is
the flow's first output, as text.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import ModelNotFoundError, SpecError
from rung.flows.check import Flow, load_flow
from rung.flows.refs import to_text
from rung.flows.run import FlowRunner
from rung.models.base import (
    ClassifyRequest,
    GenerateRequest,
    Generation,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.profile import AnyName, BackendProfile

__all__ = ["FlowModel", "FlowOptions", "find_flow"]


class FlowOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dir: str = Field(default="flows", description="Folder where flow:<name> finds <name>.yaml.")
    input: str | None = Field(
        default=None, description="The input the text goes to. Default: the flow's first input."
    )


def find_flow(name: str, folder: str = "flows") -> Path:
    """The file ``flow:<name>`` means."""
    direct = Path(name).expanduser()
    if direct.suffix in (".yaml", ".yml") or direct.is_file():
        if not direct.is_file():
            raise ModelNotFoundError(f"flow:{name}: no flow file at {direct}")
        return direct
    for suffix in (".yaml", ".yml"):
        candidate = Path(folder).expanduser() / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    known = sorted(p.stem for p in Path(folder).glob("*.y*ml")) if Path(folder).is_dir() else []
    raise ModelNotFoundError(
        f"flow:{name}: no {name}.yaml in {folder}/"
        + (f"; flows there: {', '.join(known)}" if known else "")
        + "; name the file's path instead (flow:path/to/flow.yaml)"
    )


class FlowModel(Model):
    """A flow behind the model contract; see the module docstring."""

    provider: ClassVar[str] = "flow"
    Options: ClassVar[type[BaseModel]] = FlowOptions
    can_generate: ClassVar[bool] = True
    profile: ClassVar[BackendProfile] = BackendProfile(
        kind="api",
        any_name=AnyName(
            "<flow file or name>",
            "a flow of retrieve / prompt / model / classify / route steps (rung flow check)",
            "a YAML file",
        ),
    )
    #: a flow's own models say whether they run in this process; the flow is glue
    in_process: ClassVar[bool] = False

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        assert isinstance(self.options, FlowOptions)
        self.opts: FlowOptions = self.options
        self._flow: Flow | None = None
        self._runner: FlowRunner | None = None

    @property
    def flow(self) -> Flow:
        if self._flow is None:
            self._flow = load_flow(find_flow(self.name, self.opts.dir))
        return self._flow

    def check(self) -> None:
        flow = self.flow
        name = self.opts.input
        if name is not None and name not in flow.spec.inputs:
            raise SpecError(f"{self.model_id}: the flow has no input {name!r}")
        if name is None and not flow.spec.inputs:
            raise SpecError(f"{self.model_id}: the flow has no inputs to give the text to")
        FlowRunner(flow).check()

    def load(self) -> None:
        self._runner = FlowRunner(self.flow)
        self._runner.start()

    def fingerprint(self) -> str:
        # a new version of the flow file gives new answers
        return stable_hash({"id": self.model_id, "version": self.flow.source.digest})

    def info(self) -> ModelInfo:
        return ModelInfo(path=str(self.flow.path), extra={"flow_version": self.flow.version})

    @property
    def runner(self) -> FlowRunner:
        if self._runner is None:
            raise SpecError(f"{self.model_id} is not loaded: call load() first")
        return self._runner

    def _inputs(self, text: str) -> dict[str, Any]:
        name = self.opts.input or next(iter(self.flow.spec.inputs))
        return {name: text}

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        results = await asyncio.gather(*(self.runner.run(self._inputs(r.text)) for r in requests))
        predictions = []
        for request, result in zip(requests, results, strict=True):
            last = result.last
            tokens_in, tokens_out = result.tokens
            raw = to_text(last.output if last else None).strip()
            label = raw if raw in request.labels else None
            if label is None:
                label = next((lab for lab in request.labels if lab.lower() == raw.lower()), None)
            confidence = last.confidence if last is not None and label is not None else None
            predictions.append(Prediction(label, {}, confidence, tokens_in, tokens_out, raw=raw))
        return predictions

    async def generate(self, request: GenerateRequest) -> Generation:
        user = [m.content for m in request.messages if m.role == "user"]
        result = await self.runner.run(self._inputs(user[-1] if user else ""))
        first = next(iter(result.outputs.values()), None)
        tokens_in, tokens_out = result.tokens
        return Generation(to_text(first), tokens_in, tokens_out, "stop")

    async def aclose(self) -> None:
        if self._runner is not None:
            await self._runner.aclose()
            self._runner = None

    def close(self) -> None:
        if self._runner is not None:
            for model in self._runner.models():
                model.close()
            self._runner = None
