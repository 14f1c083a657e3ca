"""The advice for a run folder: read results.json (and spec.yaml), build the cards, advise.

This is the one place the advice meets files, so the CLI and the HTML report get the same
``Advice`` (``advice_for_results`` when the results are already in memory, as when a report is
written at the end of a run).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from rung.advise.advice import Advice, Constraints, advise
from rung.catalog.cards import ModelCard, card_for
from rung.catalog.overrides import CardOverride
from rung.errors import DataError, RunError, RungError
from rung.models.registry import profile_of

__all__ = ["advice_for_results", "advice_for_run", "cards_for_results", "read_run"]


def read_run(run_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The results of a run folder (or of a results.json path), and the base URL each rung
    label was asked at, from the spec.yaml beside it (a local one keeps data on premises)."""
    results_path = run_dir if run_dir.is_file() else run_dir / "results.json"
    if not results_path.is_file():
        raise RunError(
            f"{run_dir} holds no results.json; give a run folder written by `rung compare` "
            "(or run `rung advise --task classify` to advise before measuring)"
        )
    try:
        results = json.loads(results_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise DataError(f"{results_path} is not valid JSON ({e}); re-run `rung compare`") from None
    if not isinstance(results, dict):
        raise DataError(f"{results_path} is not a rung results file; re-run `rung compare`")
    base_urls: dict[str, str] = {}
    spec_path = results_path.parent / "spec.yaml"
    if spec_path.is_file():
        try:
            spec = yaml.safe_load(spec_path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError):
            spec = {}  # the results alone are enough; only the base URLs are lost
        models = spec.get("models", []) if isinstance(spec, dict) else []
        for m in models if isinstance(models, list) else []:
            if not isinstance(m, dict):
                continue
            url = (m.get("options") or {}).get("base_url")
            if isinstance(url, str):
                base_urls[str(m.get("label") or m.get("id"))] = url
    return results, base_urls


def cards_for_results(
    results: Mapping[str, Any],
    base_urls: Mapping[str, str] | None = None,
    overrides: Mapping[str, CardOverride] | None = None,
    overrides_source: str = "the catalog file",
) -> dict[str, ModelCard]:
    """A card per rung label. A rung whose model cannot be read here (a file since moved, a
    backend's name rung has no card for) gets a card from its measured figures, with a note."""
    cards: dict[str, ModelCard] = {}
    for r in results.get("rungs") or []:
        if not isinstance(r, dict) or "model" not in r:
            continue
        label = str(r.get("label") or r["model"])
        model = str(r["model"])
        try:
            cards[label] = card_for(
                model, overrides, (base_urls or {}).get(label), overrides_source
            )
        except RungError as e:
            profile = profile_of(model.partition(":")[0])
            billing = profile.billing((base_urls or {}).get(label)) if profile else "machine"
            api = profile is not None and profile.kind == "api"
            cards[label] = ModelCard(
                model_id=model,
                kind="api" if api else "decoder",
                origin="results",
                figures_from="results.json",
                params=r.get("params"),
                weights_bytes=r.get("file_size_bytes"),
                on_prem=billing == "machine",
                notes=(f"no card: {e}",),
            )
    return cards


def advice_for_results(
    results: Mapping[str, Any],
    constraints: Constraints,
    base_urls: Mapping[str, str] | None = None,
    overrides: Mapping[str, CardOverride] | None = None,
    overrides_source: str = "the catalog file",
) -> Advice:
    cards = cards_for_results(results, base_urls, overrides, overrides_source)
    return advise(results, constraints, cards)


def advice_for_run(
    run_dir: Path,
    constraints: Constraints,
    overrides: Mapping[str, CardOverride] | None = None,
    overrides_source: str = "the catalog file",
) -> Advice:
    results, base_urls = read_run(run_dir)
    return advice_for_results(results, constraints, base_urls, overrides, overrides_source)
