"""``fields``: a JSON object of named fields pulled out of each text, as a JSON schema in the
spec describes it; scored by the share of answers the schema accepts (``jsonschema``) and the
accuracy of each field against the reference object.

A field is right when the answer's value equals the reference's after trimming and case
folding (numbers and booleans compared as JSON text); an answer that is not a JSON object has
every field wrong.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rung.errors import DataError, MissingDependencyError
from rung.models.base import GenerateRequest
from rung.tasks.data import jsonl_records, read_text
from rung.tasks.generative import GenerativePrompt, Splits, render_requests, split_items
from rung.tasks.metrics import bootstrap_mean
from rung.tasks.registry import Item, TaskKind, TaskScores

__all__ = ["FieldsKind", "FieldsSource", "FieldsTask", "parse_object"]

DEFAULT_INSTRUCTIONS = (
    "Extract these fields from the text as one JSON object that follows this JSON schema:\n"
    "{schema}\nAnswer with the JSON object only; use null for a field the text does not give."
)


class FieldsSource(BaseModel):
    """A JSONL file: the text and the reference object of fields."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="File path, relative to the spec file's folder.")
    text: str = Field(default="text", description="Field holding the text.")
    reference: str = Field(default="fields", description="Field holding the reference object.")
    id: str | None = Field(default=None, description="Field holding a unique id (default: line).")


class FieldsTask(BaseModel):
    """Fill a JSON object of fields from each text."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["fields"] = "fields"
    data: FieldsSource
    test_data: FieldsSource | None = Field(default=None, description="A separate test file.")
    json_schema: dict[str, Any] = Field(
        alias="schema", description="JSON schema of the object, with the fields as properties."
    )
    splits: Splits = Field(default_factory=Splits)
    prompt: GenerativePrompt = Field(
        default_factory=lambda: GenerativePrompt(instructions=DEFAULT_INSTRUCTIONS, max_tokens=160)
    )

    @field_validator("json_schema")
    @classmethod
    def _has_properties(cls, schema: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(schema.get("properties"), dict) or not schema["properties"]:
            raise ValueError("schema must be a JSON schema object with properties (the fields)")
        return schema

    @property
    def field_names(self) -> list[str]:
        return list(self.json_schema["properties"])


def _read(src: FieldsSource, base_dir: Path) -> list[Item[dict[str, Any]]]:
    path = src.path if src.path.is_absolute() else base_dir / src.path
    items: list[Item[dict[str, Any]]] = []
    for lineno, rec in jsonl_records(read_text(path, "auto"), path):
        ref = rec.get(src.reference)
        if src.text not in rec or not isinstance(ref, dict):
            raise DataError(
                f"{path}:{lineno}: needs a text field {src.text!r} and an object {src.reference!r}"
            )
        items.append(Item(str(rec[src.id]) if src.id else str(lineno), str(rec[src.text]), ref))
    return items


def parse_object(output: str | None) -> dict[str, Any] | None:
    """The JSON object in a rung's answer (the outermost braces); None when there is none."""
    if not output:
        return None
    start, end = output.find("{"), output.rfind("}")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(output[start : end + 1])
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _same(a: object, b: object) -> bool:
    if isinstance(a, str) and isinstance(b, str):
        return a.strip().casefold() == b.strip().casefold()
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


class FieldsKind(TaskKind[FieldsTask, dict[str, Any]]):
    task_type: ClassVar[str] = "fields"
    Spec: ClassVar[type[BaseModel]] = FieldsTask
    primary: ClassVar[str] = "field_accuracy"

    def template(self) -> dict[str, Any]:
        return {
            "type": "fields",
            "data": {"path": "EDIT-ME-path-to-your-texts-and-fields.jsonl"},
            "schema": {
                "type": "object",
                "properties": {"EDIT-ME-field": {"type": "string"}},
            },
            "splits": {"test_size": 200},
        }

    def load_items(
        self, spec: FieldsTask, base_dir: Path
    ) -> tuple[list[Item[dict[str, Any]]], list[Item[dict[str, Any]]]]:
        pool = _read(spec.data, base_dir)
        test = _read(spec.test_data, base_dir) if spec.test_data else None
        return split_items(pool, test, spec.splits)

    def build_requests(
        self,
        spec: FieldsTask,
        train: Sequence[Item[dict[str, Any]]],
        test: Sequence[Item[dict[str, Any]]],
    ) -> list[GenerateRequest]:
        return render_requests(
            spec.prompt,
            train,
            test,
            lambda i: json.dumps(i.reference, ensure_ascii=False),
            spec.splits.seed,
            schema=json.dumps(spec.json_schema),
        )

    def score(
        self,
        spec: FieldsTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[dict[str, Any]]],
        *,
        resamples: int = 1000,
        seed: int = 0,
    ) -> TaskScores:
        try:
            import jsonschema
        except ImportError as e:
            raise MissingDependencyError("scoring fields", "pip install 'rung[tasks]'") from e
        validator = jsonschema.Draft202012Validator(spec.json_schema)
        names = spec.field_names
        per_item: list[dict[str, float]] = []
        for out, item in zip(outputs, items, strict=True):
            obj = parse_object(out)
            row = {"valid": float(obj is not None and validator.is_valid(obj))}
            for name in names:
                row[f"field:{name}"] = float(
                    obj is not None and _same(obj.get(name), item.reference.get(name))
                )
            row["field_accuracy"] = sum(row[f"field:{n}"] for n in names) / len(names)
            per_item.append(row)
        metrics = {
            key: bootstrap_mean([r[key] for r in per_item], resamples=resamples, seed=seed)
            for key in ("field_accuracy", "valid", *(f"field:{n}" for n in names))
        }
        return TaskScores(per_item, metrics, self.primary)
