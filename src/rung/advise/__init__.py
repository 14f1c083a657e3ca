"""rung advise: the smallest rung that meets the user's constraints, with the reasons, the
runners-up and what would change the choice; and, before anything was measured, the catalog's
candidates for a device with the compare spec that would measure them."""

from rung.advise.advice import (
    ADVICE_VERSION,
    Advice,
    Assessment,
    Check,
    Constraints,
    Interval,
    LoadPoint,
    RungFigures,
    advise,
    parse_results,
)
from rung.advise.run import advice_for_results, advice_for_run, cards_for_results, read_run

__all__ = [
    "ADVICE_VERSION",
    "Advice",
    "Assessment",
    "Check",
    "Constraints",
    "Interval",
    "LoadPoint",
    "RungFigures",
    "advice_for_results",
    "advice_for_run",
    "advise",
    "cards_for_results",
    "parse_results",
    "read_run",
]
