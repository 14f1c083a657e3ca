"""The advice for a run folder: read its record (and its spec), build the cards, advise.

This is the one place the advice meets a run folder, so the CLI and the HTML report get the
same ``Advice`` (``advice_for_results`` when the results are already in memory, as when a
report is written at the end of a run).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from rung.advise.advice import Advice, Constraints, advise
from rung.catalog.cards import ModelCard, card_for
from rung.catalog.overrides import CardOverride
from rung.errors import RunError, RungError
from rung.models.registry import profile_of
from rung.runs import RunFolder, RunResults

__all__ = ["advice_for_results", "advice_for_run", "cards_for_results", "read_run"]


def read_run(run_dir: Path) -> tuple[RunResults, dict[str, str]]:
    """The results of a run folder (or of a results.json path), and the base URL each rung
    label was asked at, from the spec.yaml beside it (a local one keeps data on premises)."""
    folder = RunFolder.at(run_dir)
    if not folder.results_path.is_file():
        raise RunError(
            f"{run_dir} holds no results.json; give a run folder written by `rung compare` "
            "(or run `rung advise --task classify` to advise before measuring)"
        )
    results = folder.results()
    spec = folder.spec()
    return results, spec.base_urls() if spec is not None else {}


def cards_for_results(
    results: RunResults,
    base_urls: Mapping[str, str] | None = None,
    overrides: Mapping[str, CardOverride] | None = None,
    overrides_source: str = "the catalog file",
) -> dict[str, ModelCard]:
    """A card per rung label. A rung whose model cannot be read here (a file since moved, a
    backend's name rung has no card for) gets a card from its measured figures, with a note."""
    cards: dict[str, ModelCard] = {}
    for r in results.rungs:
        try:
            cards[r.label] = card_for(
                r.model, overrides, (base_urls or {}).get(r.label), overrides_source
            )
        except RungError as e:
            profile = profile_of(r.model.partition(":")[0])
            billing = profile.billing((base_urls or {}).get(r.label)) if profile else "machine"
            api = profile is not None and profile.kind == "api"
            cards[r.label] = ModelCard(
                model_id=r.model,
                kind="api" if api else "decoder",
                origin="results",
                figures_from="results.json",
                params=r.params,
                weights_bytes=r.file_size_bytes,
                on_prem=billing == "machine",
                notes=(f"no card: {e}",),
            )
    return cards


def advice_for_results(
    results: RunResults,
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
