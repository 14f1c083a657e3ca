"""Backend profiles: each backend declares its bundled names, card sources and pricing once, and
the catalog, the costs and the contract's defaults are driven from them."""

from __future__ import annotations

import pytest

from rung.catalog.cards import all_cards, card_for, catalog_ids
from rung.catalog.costs import CostSpec, token_price
from rung.errors import ModelNotFoundError
from rung.models import registry
from rung.models.base import ClassifyRequest, Model, Prediction, run_sync
from rung.models.profile import BackendProfile, is_local_url


def test_every_backend_declares_a_profile() -> None:
    for provider in registry.providers():
        cls = registry.backend_class(provider)
        assert isinstance(cls.profile, BackendProfile), provider
        for entry in cls.profile.bundled:
            assert entry.file.install.startswith("pip install"), entry.name
            assert entry.file.installed(), entry.name  # the dev install has every bundled file
    assert registry.profile_of("no-such-provider") is None


def test_pricing_follows_the_endpoint() -> None:
    api = registry.backend_class("openai").profile
    assert api.billing(None) == "tokens"
    assert api.billing("https://api.openai.com/v1") == "tokens"
    assert api.billing("http://localhost:8080/v1") == "machine"  # self-hosted
    assert api.billing("http://10.1.2.3/v1") == "machine"
    local = registry.backend_class("llamacpp").profile
    assert local.billing("https://api.openai.com/v1") == "machine"
    assert is_local_url("http://box.lan:8000/v1") and not is_local_url("https://example.com/v1")


def test_a_rung_reads_its_billing_from_its_profile_and_endpoint() -> None:
    assert (
        registry.create("openai:gpt-4o-mini", {"base_url": "https://api.openai.com/v1"}).billing
        == "tokens"
    )
    assert registry.create("openai:m", {"base_url": "http://127.0.0.1:9/v1"}).billing == "machine"
    assert registry.create("llamacpp:smollm2-135m-instruct").billing == "machine"
    assert registry.create("encoder:minilm-l6").billing == "machine"


def test_the_catalog_lists_the_bundled_names_of_the_profiles() -> None:
    bundled = [
        f"{p}:{entry.name}"
        for p in registry.providers()
        for entry in registry.backend_class(p).profile.bundled
        if entry.in_catalog
    ]
    assert bundled == [
        "encoder:minilm-l6",
        "llamacpp:smollm2-135m-instruct",
        "llamacpp:gemma-3-270m",
    ]
    assert catalog_ids()[: len(bundled)] == bundled
    # transformers runs llamacpp's SmolLM2 file: it has a card, but the catalog lists the file once
    alias = card_for("transformers:smollm2-135m-instruct")
    assert (
        alias.origin == "bundled"
        and alias.params == card_for("llamacpp:smollm2-135m-instruct").params
    )
    assert "transformers:smollm2-135m-instruct" not in {c.model_id for c in all_cards()}


def test_card_sources_decide_what_a_path_may_be(tmp_path: object) -> None:
    with pytest.raises(ModelNotFoundError, match="neither a bundled name nor a GGUF file"):
        card_for("llamacpp:no-such-model")
    with pytest.raises(ModelNotFoundError, match="reads no model hub offline"):
        card_for("encoder:no-such/model")
    with pytest.raises(ModelNotFoundError, match="cannot read the facts of a 'cascade' model"):
        card_for("cascade:router")


def test_token_prices_are_asked_at_the_profiles_provider() -> None:
    price, source = token_price("openai:gpt-4o-mini", CostSpec())
    assert price is not None and "openai/" in source
    # A provider no backend declares is priced at whichever provider the price list knows.
    assert token_price("no-such-provider:gpt-4o-mini", CostSpec())[0] is not None
    assert token_price("openai:no-such-model-xyz", CostSpec()) == (None, "no price known")


class _Plain(Model):
    """A test double of a backend that declares nothing beyond the contract's defaults."""

    provider = "plain"

    def __init__(self) -> None:
        super().__init__("double")
        self.closed = 0

    def load(self) -> None:
        pass

    async def classify(self, requests: object) -> list[Prediction]:
        return []

    def close(self) -> None:
        self.closed += 1


def test_the_contract_defaults() -> None:
    model = _Plain()
    assert (model.can_trace, model.endpoint, model.max_batch, model.billing) == (
        False,
        None,
        1,
        "machine",
    )
    assert model.breaker_state() is None
    assert model.bundled() == []
    run_sync(model.aclose())
    assert model.closed == 1  # aclose() closes by default
    with pytest.raises(NotImplementedError, match="does not trace"):
        run_sync(model.classify_traced([ClassifyRequest("t", ("a", "b"), ())]))


def test_max_batch_is_the_encoders_batch_size() -> None:
    assert registry.create("encoder:minilm-l6", {"batch_size": 7}).max_batch == 7
    assert registry.create("llamacpp:smollm2-135m-instruct").max_batch == 1
