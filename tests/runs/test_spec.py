from __future__ import annotations

import json
from pathlib import Path

import pytest

from rung.errors import SpecError
from rung.runs.spec import CompareSpec, load_spec

REPO = Path(__file__).resolve().parents[2]

MINIMAL = """
task:
  type: classify
  data: {path: reviews.csv, text: text, label: label}
  labels: [negative, neutral, positive]
  train_size: 400
  test_size: 200
  seed: 0
models: [encoder:minilm-l6, llamacpp:smollm2-135m-instruct]
"""


def test_the_minimal_spec_of_the_docs_validates(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(MINIMAL, encoding="utf-8")
    spec = load_spec(path)
    assert [m.id for m in spec.models] == ["encoder:minilm-l6", "llamacpp:smollm2-135m-instruct"]
    assert spec.task.train_size == 400 and spec.task.test_size == 200


def test_unknown_field_is_named(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(MINIMAL.replace("seed: 0", "seed: 0\n  temprature: 0"), encoding="utf-8")
    with pytest.raises(SpecError, match=r"unknown field 'task.temprature'"):
        load_spec(path)


def test_malformed_yaml_gives_line(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("task:\n  type: classify\n  labels: [a, b\nmodels: x\n", encoding="utf-8")
    with pytest.raises(SpecError, match=r"malformed YAML at line \d+"):
        load_spec(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(SpecError, match="a spec is a YAML mapping"):
        load_spec(path)


def test_missing_models_and_duplicate_rungs(tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(
        MINIMAL.replace("models: [encoder:minilm-l6, llamacpp:smollm2-135m-instruct]", ""),
        encoding="utf-8",
    )
    with pytest.raises(SpecError, match="missing field 'models'"):
        load_spec(path)
    path.write_text(
        MINIMAL.replace("llamacpp:smollm2-135m-instruct", "encoder:minilm-l6"), encoding="utf-8"
    )
    with pytest.raises(SpecError, match="rungs listed twice"):
        load_spec(path)


def test_published_schema_is_current() -> None:
    published = json.loads(
        (REPO / "schemas" / "compare-spec.schema.json").read_text(encoding="utf-8")
    )
    assert published == CompareSpec.model_json_schema(), "run `make schema` and commit the result"


@pytest.mark.parametrize(
    "example", sorted((REPO / "examples").glob("*.yaml")), ids=lambda p: p.name
)
def test_examples_validate(example: Path) -> None:
    if example.name.startswith("serve"):
        from rung.serve.config import load_config

        load_config(example)
    else:
        from rung.app.compare import load_any_spec

        spec = load_any_spec(example)
        # and the task's items are read from the shared data (an answer task retrieves too)
        spec_dir = example.parent
        if hasattr(spec, "kind"):
            _, test = spec.kind.load_items(spec.task_spec(), spec_dir)
            assert test


def test_published_serve_schema_is_current() -> None:
    from rung.serve.config import ServeConfig

    published = json.loads(
        (REPO / "schemas" / "serve-config.schema.json").read_text(encoding="utf-8")
    )
    assert published == ServeConfig.model_json_schema(), "run `make schema` and commit the result"
