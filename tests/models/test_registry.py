from __future__ import annotations

import pytest

from rung.errors import ModelNotFoundError, SpecError
from rung.models import registry


def test_builtins_register_through_entry_points() -> None:
    assert set(registry.providers()) >= {"llamacpp", "encoder", "openai", "transformers"}


def test_bundled_models_are_listed_with_their_source() -> None:
    ids = {m.model_id: m for m in registry.bundled_models()}
    for model_id in (
        "llamacpp:smollm2-135m-instruct",
        "llamacpp:gemma-3-270m",
        "encoder:minilm-l6",
    ):
        assert model_id in ids
        assert ids[model_id].installed
        assert ids[model_id].source


def test_id_without_provider_suggests_one() -> None:
    with pytest.raises(
        ModelNotFoundError, match=r"provider:name \(did you mean 'llamacpp:smollm2-135m-instruct'"
    ):
        registry.parse_model_id("smollm2-135m-instruct")


def test_unknown_provider_suggests_one() -> None:
    with pytest.raises(ModelNotFoundError, match=r"did you mean 'openai'"):
        registry.create("opnai:gpt-4o-mini")


def test_unknown_option_is_a_spec_error() -> None:
    with pytest.raises(
        SpecError, match=r"invalid options for llamacpp:smollm2-135m-instruct: n_ctxx"
    ):
        registry.create("llamacpp:smollm2-135m-instruct", {"n_ctxx": 10})


def test_create_imports_nothing_heavy() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from rung.models import registry;"
        "[registry.create(m) for m in ('llamacpp:smollm2-135m-instruct', 'encoder:minilm-l6', 'openai:x', 'transformers:smollm2-135m-instruct')];"
        "heavy = [m for m in ('llama_cpp', 'torch', 'sentence_transformers', 'transformers') if m in sys.modules];"
        "print(heavy)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
