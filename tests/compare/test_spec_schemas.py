"""The JSON schema of each task type's spec: published under schemas/, current, and the one an
editor checks a spec file against (`rung schema summarize`)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from typer.testing import CliRunner

from rung.cli.main import app
from rung.compare.tasks import spec_model
from rung.tasks.registry import BUILTIN

REPO = Path(__file__).resolve().parents[2]
TYPES = sorted(t for t in BUILTIN if t != "classify")


@pytest.mark.parametrize("task_type", TYPES)
def test_published_task_spec_schema_is_current(task_type: str) -> None:
    published = json.loads((REPO / "schemas" / f"{task_type}-spec.schema.json").read_text())
    assert published == spec_model(task_type).model_json_schema(), "run `make schema`"


def _translate_spec() -> dict[str, object]:
    return {
        "name": "fr-en",
        "task": {
            "type": "translate",
            "data": {"path": "fr_en.jsonl", "text": "source", "references": ["target"]},
            "source": "French",
            "target": "English",
            "prompt": {"instructions": "Translate from {source} to {target}.", "shots": 2},
        },
        "models": ["llamacpp:gemma-3-270m"],
        "measure": {"load": None},
    }


def test_the_schema_accepts_a_spec_and_names_what_is_wrong_in_another() -> None:
    result = CliRunner().invoke(app, ["schema", "translate"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    spec = _translate_spec()
    jsonschema.validate(spec, schema)
    # the model validates the same spec: the schema is the model's, not a copy
    spec_model("translate").model_validate(spec)
    bad = _translate_spec()
    bad["task"]["prompt"]["shotz"] = 2  # type: ignore[index]
    with pytest.raises(jsonschema.ValidationError, match="shotz"):
        jsonschema.validate(bad, schema)


def test_an_unknown_schema_exits_2_with_the_task_types() -> None:
    result = CliRunner().invoke(app, ["schema", "sumarize"])
    assert result.exit_code == 2
    assert "did you mean 'summarize'" in result.output and "answer" in result.output


@pytest.mark.parametrize(
    "example",
    sorted(p for p in (REPO / "examples").glob("*.yaml") if not p.name.startswith("serve")),
    ids=lambda p: p.name,
)
def test_every_example_spec_is_valid_under_its_published_schema(example: Path) -> None:
    data = yaml.safe_load(example.read_text(encoding="utf-8"))
    task_type = data["task"].get("type", "classify")
    name = "compare-spec" if task_type == "classify" else f"{task_type}-spec"
    jsonschema.validate(data, json.loads((REPO / "schemas" / f"{name}.schema.json").read_text()))


@pytest.mark.parametrize("task_type", sorted(BUILTIN))
def test_every_kinds_starting_spec_is_valid_and_marks_what_to_edit(task_type: str) -> None:
    from rung.tasks.registry import kind_of

    kind = kind_of(task_type)
    template = kind.template()
    kind.Spec.model_validate(template)
    assert template["type"] == task_type and "EDIT-ME" in json.dumps(template)
