"""A flow file checked before anything runs: its fields (pydantic), its references (an unknown
input or step, a field an output does not have), the order its steps run in (a cycle is an
error) and the types references carry where a type matters (a route's ``on``). Every problem is
a SpecError naming ``file:line``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rung.errors import SpecError, did_you_mean
from rung.flows import expr
from rung.flows.refs import Ref, find_refs, sole_ref
from rung.flows.source import FlowSource, Loc, read_source
from rung.flows.spec import (
    ClassifyStep,
    CodeStep,
    ExtractStep,
    FlowSpec,
    HttpStep,
    RetrieveStep,
    RouteStep,
    Step,
)

__all__ = ["OUTPUT_TYPES", "Flow", "check_flow", "load_flow"]

#: what each step type's output is, for type checks
OUTPUT_TYPES: dict[str, str] = {
    "retrieve": "hits",
    "prompt": "string",
    "model": "string",
    "classify": "label",
    "extract": "object",
    "route": "string",
    "http": "any",
    "code": "any",
}
_JSON_TYPES = {"string", "integer", "number", "boolean", "object", "array"}


@dataclass(frozen=True)
class Flow:
    """A checked flow: the spec, where it came from, its version and its step order."""

    spec: FlowSpec
    source: FlowSource
    #: step ids in the order they run (each after the steps it needs)
    order: tuple[str, ...]
    #: step id -> the step ids it reads
    needs: dict[str, tuple[str, ...]]
    #: step id -> the routes that may pick it
    routed_by: dict[str, tuple[str, ...]]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def version(self) -> str:
        """The flow's version: the first 12 hex digits of the sha256 of its file."""
        return self.source.version

    @property
    def path(self) -> Path:
        return self.source.path

    def step(self, step_id: str) -> Step:
        return next(s for s in self.spec.steps if s.id == step_id)

    def input_schema(self) -> dict[str, Any]:
        """The flow's inputs as a JSON schema, for forms and API clients."""
        props: dict[str, Any] = {}
        required = []
        for name, spec in self.spec.inputs.items():
            prop: dict[str, Any] = {"type": spec.type}
            if spec.description:
                prop["description"] = spec.description
            if spec.default is not None:
                prop["default"] = spec.default
            else:
                required.append(name)
            props[name] = prop
        return {"type": "object", "properties": props, "required": required}

    def resolve_path(self, value: str) -> str:
        """A path in the flow file, read from the flow file's folder (URLs as they are)."""
        if "://" in value:
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else (self.path.parent / path).resolve())


def load_flow(path: Path) -> Flow:
    return check_flow(read_source(path))


def _pydantic_error(source: FlowSource, e: ValidationError) -> SpecError:
    err = e.errors()[0]
    loc: list[str | int] = list(err["loc"])
    # a step's loc carries the union's tag after its index: steps.2.model.prompt
    steps = source.data.get("steps")
    if len(loc) >= 3 and loc[0] == "steps" and isinstance(loc[1], int) and isinstance(steps, list):
        step = steps[loc[1]] if loc[1] < len(steps) else None
        if isinstance(step, dict) and loc[2] == step.get("type"):
            del loc[2]
    where = ".".join(str(p) for p in loc)
    if err["type"] == "extra_forbidden":
        message = f"unknown field {where!r}; remove it or check its spelling"
    elif err["type"] == "missing":
        message = f"missing field {where!r}"
    elif err["type"] == "union_tag_invalid":
        message = (
            f"{where}: unknown step type; use one of retrieve, prompt, model, classify, "
            "extract, route, http, code"
        )
    else:
        message = f"{where}: {err['msg'].removeprefix('Value error, ')}"
    more = len(e.errors()) - 1
    if more:
        message += f" (and {more} more problem{'s' if more > 1 else ''})"
    return source.error(loc, message)


def _strings(value: Any, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*loc, str(k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*loc, i))


# fields whose strings are data, not templates
_LITERAL_FIELDS = {
    "id",
    "type",
    "model",
    "options",
    "labels",
    "schema",
    "cases",
    "default",
    "above",
    "below",
    "index",
    "mode",
    "method",
    "allowed_hosts",
}


class _Checker:
    def __init__(self, source: FlowSource, spec: FlowSpec) -> None:
        self.source = source
        self.spec = spec
        self.steps = {s.id: s for s in spec.steps}

    def fail(self, loc: Sequence[str | int], message: str) -> SpecError:
        return self.source.error(loc, message)

    def step_loc(self, step_id: str) -> Loc:
        index = next(i for i, s in enumerate(self.spec.steps) if s.id == step_id)
        return ("steps", index)

    # -- references ------------------------------------------------------------------------------

    def refs(self, step: Step) -> list[tuple[Loc, Ref]]:
        base = self.step_loc(step.id)
        raw = self.source.data["steps"][base[1]]
        found: list[tuple[Loc, Ref]] = []
        for key, value in raw.items():
            if key in _LITERAL_FIELDS:
                continue
            if isinstance(step, CodeStep) and key == "expr":
                try:
                    found.extend(((*base, key), r) for r in expr.refs_of(expr.parse(value)))
                except expr.ExprError as e:
                    raise self.fail((*base, key), f"step {step.id!r}: {e}") from None
                continue
            for loc, text in _strings(value, (*base, key)):
                found.extend((loc, r) for r in self._parse(loc, text))
        return found

    def _parse(self, loc: Loc, text: str) -> list[Ref]:
        refs = []
        for ref in find_refs(text):
            if isinstance(ref, str):
                raise self.fail(
                    loc,
                    f"malformed reference {ref}: write {{{{inputs.NAME}}}} or "
                    "{{STEP.output}} (or STEP.confidence, STEP.output.FIELD)",
                )
            refs.append(ref)
        return refs

    def check_ref(self, loc: Loc, ref: Ref, within: str | None) -> str:
        """The type ``ref`` carries; an unknown input, step or field is an error."""
        if ref.source == "inputs":
            if ref.attr not in self.spec.inputs:
                raise self.fail(
                    loc,
                    f"{ref.text}: the flow has no input {ref.attr!r}"
                    f"{did_you_mean(ref.attr, self.spec.inputs)}; declare it under inputs:",
                )
            if ref.fields:
                raise self.fail(loc, f"{ref.text}: an input has no fields")
            return self.spec.inputs[ref.attr].type
        if ref.source not in self.steps:
            raise self.fail(
                loc,
                f"{ref.text}: unknown step {ref.source!r}{did_you_mean(ref.source, self.steps)}",
            )
        if ref.source == within:
            raise self.fail(loc, f"{ref.text}: step {within!r} reads its own output")
        target = self.steps[ref.source]
        kind = OUTPUT_TYPES[target.type]
        if ref.attr == "confidence":
            if not isinstance(target, ClassifyStep) or ref.fields:
                raise self.fail(
                    loc,
                    f"{ref.text}: only a classify step has a confidence ({target.id!r} is "
                    f"a {target.type} step)",
                )
            return "number"
        if ref.attr != "output":
            raise self.fail(
                loc,
                f"{ref.text}: a step has output (and a classify step confidence), not {ref.attr!r}",
            )
        if not ref.fields:
            return kind
        if kind == "any":
            return "any"
        if isinstance(target, ExtractStep):
            props = target.schema_["properties"]
            name = ref.fields[0]
            if name not in props:
                raise self.fail(
                    loc,
                    f"{ref.text}: the schema of step {target.id!r} has no field {name!r}"
                    f"{did_you_mean(name, props)}",
                )
            field_type = props[name].get("type") if isinstance(props[name], dict) else None
            return field_type if field_type in _JSON_TYPES and len(ref.fields) == 1 else "any"
        raise self.fail(
            loc,
            f"{ref.text}: step {target.id!r} ({target.type}) outputs {kind}, which has no fields",
        )

    # -- the flow --------------------------------------------------------------------------------

    def run(self) -> Flow:
        seen: dict[str, int] = {}
        for i, step in enumerate(self.spec.steps):
            if step.id in seen:
                raise self.fail(("steps", i, "id"), f"step id {step.id!r} is used twice")
            seen[step.id] = i
        needs: dict[str, set[str]] = {s.id: set() for s in self.spec.steps}
        routed_by: dict[str, list[str]] = {}
        for step in self.spec.steps:
            for loc, ref in self.refs(step):
                self.check_ref(loc, ref, step.id)
                if ref.source != "inputs":
                    needs[step.id].add(ref.source)
            if isinstance(step, RouteStep):
                self.check_route(step)
                for target in step.targets:
                    routed_by.setdefault(target, []).append(step.id)
            if isinstance(step, HttpStep):
                self.check_http(step)
            if isinstance(step, RetrieveStep) and sole_ref(step.index) is not None:
                raise self.fail(
                    (*self.step_loc(step.id), "index"), "index is a path, not a reference"
                )
        for loc, text in _strings(self.source.data.get("outputs") or {}, ("outputs",)):
            for ref in self._parse(loc, text):
                self.check_ref(loc, ref, None)
        # a route runs before the steps it picks
        edges = {s: set(n) for s, n in needs.items()}
        for target, routes in routed_by.items():
            edges[target].update(routes)
        order = self.order(edges)
        return Flow(
            self.spec,
            self.source,
            tuple(order),
            {s: tuple(sorted(n)) for s, n in needs.items()},
            {t: tuple(r) for t, r in routed_by.items()},
        )

    def check_route(self, step: RouteStep) -> None:
        base = self.step_loc(step.id)
        for target_field, target in [
            *((("cases", k), v) for k, v in step.cases.items()),
            (("default",), step.default),
            (("above",), step.above),
            (("below",), step.below),
        ]:
            if target is not None and target not in self.steps:
                raise self.fail(
                    (*base, *target_field),
                    f"route {step.id!r} picks unknown step {target!r}"
                    f"{did_you_mean(target, self.steps)}",
                )
            if target == step.id:
                raise self.fail((*base, *target_field), f"route {step.id!r} picks itself")
        ref = sole_ref(step.by)
        if ref is None:
            raise self.fail(
                (*base, "by"), "a route's by is one reference, e.g. {{sentiment.output}}"
            )
        kind = self.check_ref((*base, "by"), ref, step.id)
        if step.threshold is not None:
            if kind not in ("number", "integer", "any"):
                raise self.fail(
                    (*base, "by"),
                    f"type mismatch: a threshold route compares a number, but {ref.text} is "
                    f"{kind}; use {{{{STEP.confidence}}}} of a classify step",
                )
            return
        if kind not in ("label", "string", "any"):
            raise self.fail(
                (*base, "by"),
                f"type mismatch: a route by cases reads a label, but {ref.text} is {kind}",
            )
        source = self.steps.get(ref.source)
        if isinstance(source, ClassifyStep) and not ref.fields:
            unknown = [c for c in step.cases if c not in source.labels]
            if unknown:
                raise self.fail(
                    (*base, "cases", unknown[0]),
                    f"route {step.id!r}: {unknown[0]!r} is not a label of step {source.id!r} "
                    f"({', '.join(source.labels)})",
                )

    def check_http(self, step: HttpStep) -> None:
        from urllib.parse import urlsplit

        base = self.step_loc(step.id)
        # a URL with references is checked when it runs, once they are filled in
        if "{{" not in step.url:
            parts = urlsplit(step.url)
            if parts.scheme not in ("http", "https"):
                raise self.fail((*base, "url"), f"{step.url!r}: only http and https URLs")
            if (parts.hostname or "") not in step.allowed_hosts:
                raise self.fail(
                    (*base, "url"),
                    f"host {parts.hostname!r} is not in allowed_hosts ({', '.join(step.allowed_hosts)})",
                )

    def order(self, edges: dict[str, set[str]]) -> list[str]:
        """Steps in file order, each moved after the steps it needs; a cycle is an error."""
        done: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        path: list[str] = []

        def visit(step_id: str) -> None:
            if state.get(step_id) == 2:
                return
            if state.get(step_id) == 1:
                cycle = [*path[path.index(step_id) :], step_id]
                raise self.fail(
                    self.step_loc(step_id),
                    f"steps form a cycle: {' -> '.join(cycle)}; a step can only read steps "
                    "that do not read it back",
                )
            state[step_id] = 1
            path.append(step_id)
            for dep in sorted(edges[step_id], key=lambda s: self.step_loc(s)[1]):
                visit(dep)
            path.pop()
            state[step_id] = 2
            done.append(step_id)

        for step in self.spec.steps:
            visit(step.id)
        return done


def check_flow(source: FlowSource) -> Flow:
    """``source`` as a checked Flow, or the first problem as a SpecError naming file:line."""
    try:
        spec = FlowSpec.model_validate(source.data)
    except ValidationError as e:
        raise _pydantic_error(source, e) from None
    return _Checker(source, spec).run()
