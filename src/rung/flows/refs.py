"""``{{...}}`` references in a flow's strings, and the types they carry.

    {{inputs.question}}          an input of the flow
    {{hits.output}}              a step's output
    {{reply.output.order_id}}    a field of an object output (extract, http)
    {{sentiment.confidence}}     a classify step's confidence

A string that is exactly one reference keeps the referenced value's type (a route's ``on``, a
value of an http body); a reference inside other text is rendered as text: retrieved chunks
as numbered passages, objects as JSON, a skipped step as nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["BAD_BRACES", "REF", "Ref", "find_refs", "render", "resolve", "sole_ref", "to_text"]

#: a well-formed reference
REF = re.compile(
    r"\{\{\s*([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z0-9_-]+)*)\s*\}\}"
)
#: anything between double braces, to tell a malformed reference from a well-formed one
BAD_BRACES = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)


@dataclass(frozen=True)
class Ref:
    source: str  # "inputs" or a step id
    attr: str  # the input's name, or "output" / "confidence"
    fields: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "{{" + ".".join((self.source, self.attr, *self.fields)) + "}}"


def find_refs(template: str) -> Iterator[Ref | str]:
    """The references in ``template``; a malformed one is yielded as its text."""
    for m in BAD_BRACES.finditer(template):
        ref = REF.fullmatch(m.group(0))
        if ref is None:
            yield m.group(0)
            continue
        fields = tuple(f for f in ref.group(3).split(".") if f)
        yield Ref(ref.group(1), ref.group(2), fields)


def sole_ref(template: str) -> Ref | None:
    """The reference when ``template`` is exactly one, else None."""
    m = REF.fullmatch(template.strip())
    if m is None:
        return None
    return Ref(m.group(1), m.group(2), tuple(f for f in m.group(3).split(".") if f))


def _is_chunk(value: Any) -> bool:
    return isinstance(value, Mapping) and "text" in value


def to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list) and value and all(_is_chunk(v) for v in value):
        # retrieved chunks: numbered, so that a prompt can ask for citations; file names are
        # left out (small models copy them into the answer), the trace keeps them
        return "\n\n".join(f"[{i}] {v['text']}" for i, v in enumerate(value, 1))
    return json.dumps(value, ensure_ascii=False)


def resolve(ref: Ref, inputs: Mapping[str, Any], results: Mapping[str, Any]) -> Any:
    """The value of ``ref``; ``results`` maps step ids to their StepResult-like object with
    ``output``, ``confidence`` and ``skipped``. Checked flows only."""
    if ref.source == "inputs":
        return inputs.get(ref.attr)
    result = results.get(ref.source)
    if result is None or result.skipped:
        return None
    value = getattr(result, ref.attr)
    for name in ref.fields:
        value = value.get(name) if isinstance(value, Mapping) else None
    return value


def render(template: str, inputs: Mapping[str, Any], results: Mapping[str, Any]) -> Any:
    """``template`` with its references filled in: the value itself when the template is one
    reference, else text."""
    whole = sole_ref(template)
    if whole is not None:
        return resolve(whole, inputs, results)

    def fill(m: re.Match[str]) -> str:
        fields = tuple(f for f in m.group(3).split(".") if f)
        return to_text(resolve(Ref(m.group(1), m.group(2), fields), inputs, results))

    return REF.sub(fill, template)
