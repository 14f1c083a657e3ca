"""Prices per token of API models, from the maintained ``genai-prices`` package.

No price is typed by hand here. ``genai_prices.calc_price`` is asked for the price of 1,000
input and 1,000 output tokens (small enough to stay under any long-context price tier) and the
result is scaled to a price per million tokens. The package's bundled data snapshot is used as
installed; ``pip install -U genai-prices`` refreshes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

__all__ = ["ApiPrice", "api_price"]

_PROBE_TOKENS = 1000


@dataclass(frozen=True)
class ApiPrice:
    model_ref: str  # the name asked for
    matched_model: str  # the model genai-prices matched it to
    provider: str
    input_per_mtok: float  # USD per million input tokens
    output_per_mtok: float
    source: str
    context_window: int | None = None  # as genai-prices records it

    def cost(self, tokens_in: float, tokens_out: float) -> float:
        """USD for this many input and output tokens."""
        return (tokens_in * self.input_per_mtok + tokens_out * self.output_per_mtok) / 1e6


@cache
def api_price(name: str, provider: str | None = "openai") -> ApiPrice | None:
    """The price of ``name`` at ``provider`` (any provider when None), or None when the
    package does not know it."""
    import genai_prices
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=_PROBE_TOKENS, output_tokens=_PROBE_TOKENS)
    try:
        if provider is None:
            calc = calc_price(usage, name)
        else:
            calc = calc_price(usage, name, provider_id=provider)
    except LookupError:
        return None
    scale = 1_000_000 / _PROBE_TOKENS
    return ApiPrice(
        model_ref=name,
        matched_model=calc.model.id,
        provider=calc.provider.id,
        input_per_mtok=float(calc.input_price) * scale,
        output_per_mtok=float(calc.output_price) * scale,
        source=f"genai-prices {genai_prices.__version__}",
        context_window=calc.model.context_window,
    )
