"""Advice before measuring: catalog candidates that fit a device, and the spec to measure them."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from rung.advise.unmeasured import (
    DATA_PLACEHOLDER,
    spec_text,
    unmeasured_advice,
    write_spec,
)
from rung.catalog.cards import all_cards
from rung.errors import RunError, SpecError
from rung.runs.spec import load_spec


def test_phone_candidates_fit_and_are_unmeasured(tmp_path: Path) -> None:
    advice = unmeasured_advice("classify", all_cards(), device="phone", context=4096)
    ids = [c.card.model_id for c in advice.candidates]
    assert ids[:3] == [
        "encoder:minilm-l6",
        "llamacpp:smollm2-135m-instruct",
        "llamacpp:gemma-3-270m",
    ]
    assert "transformers:Qwen/Qwen2.5-7B-Instruct" not in ids
    excluded = {c.model_id: why for c, why in advice.excluded}
    assert "the phone leaves 3.0 GB" in excluded["transformers:Qwen/Qwen2.5-7B-Instruct"]
    assert all(c.spare_bytes is not None and c.spare_bytes >= 0 for c in advice.candidates)
    doc = advice.to_json()
    assert doc["measured"] is False
    assert {c["status"] for c in doc["candidates"]} == {"unmeasured"}

    text = spec_text(advice)
    assert "NOT measured" in text and DATA_PLACEHOLDER in text
    path = tmp_path / "spec.yaml"
    write_spec(path, text)
    spec = load_spec(path)  # valid against CompareSpec
    assert [m.id for m in spec.models] == ids
    assert str(spec.task.data.path) == DATA_PLACEHOLDER
    assert yaml.safe_load(text)["task"]["type"] == "classify"


def test_on_prem_leaves_out_api_models() -> None:
    advice = unmeasured_advice("classify", all_cards(), device="laptop", on_prem=True)
    assert not advice.api_models
    assert any(c.model_id.startswith("openai:") for c, _ in advice.excluded)
    assert "# - openai:" not in spec_text(advice)


def test_unknown_task_and_nothing_fits() -> None:
    with pytest.raises(SpecError, match="unknown task 'summarise'"):
        unmeasured_advice("summarise", all_cards())
    big_only = [c for c in all_cards() if c.model_id.endswith("Qwen2.5-7B-Instruct")]
    with pytest.raises(SpecError, match="no catalog model fits a phone"):
        spec_text(unmeasured_advice("classify", big_only, device="phone"))


def test_spec_file_of_the_user_is_never_replaced(tmp_path: Path) -> None:
    mine = tmp_path / "spec.yaml"
    mine.write_text("name: my own spec\n")
    with pytest.raises(RunError, match="was not written by rung advise"):
        write_spec(mine, "# Written by `rung advise` --task classify\n")
    assert mine.read_text() == "name: my own spec\n"
    ours = tmp_path / "ours.yaml"
    write_spec(ours, "# Written by `rung advise` --task classify\nname: a\n")
    write_spec(ours, "# Written by `rung advise` --task classify\nname: b\n")
    assert ours.read_text().endswith("name: b\n")
