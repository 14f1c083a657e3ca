"""Money: the cost of 1,000 requests on each rung, and on rungs the user did not run.

Two bases, one per kind of rung:

- **API rungs** are paid per token: measured tokens per request × the price per token, from the
  spec's ``cost.prices`` when given, else from the maintained ``genai-prices`` data
  (``rung.catalog.prices``), at the provider the backend's profile names. Never a table typed
  into rung.
- **Self-hosted rungs** (local models, and OpenAI-compatible servers on the user's own network)
  are paid per hour of machine: the hourly price of a machine profile ÷ the measured
  throughput. The throughput is the best the rung sustained (the highest load-test level, or
  the sequential run when no load test ran), since a deployment would run it at that level.

Which basis a rung has is its backend's to say (``Model.billing``, from its profile): the
compare runner, the cascade, the server and distillation all ask it.

The machine profiles are rounded on-demand cloud prices, an order of magnitude and not a
quote; set ``cost.hourly_usd`` to your own:

=========== ===================================================== ==========
profile     machine                                               USD / hour
=========== ===================================================== ==========
cpu-server  general-purpose VM, 8 vCPU, 32 GB                      0.40
l4          one NVIDIA L4 24 GB with 4 vCPU                        0.80
a100        one NVIDIA A100 80 GB                                  3.00
h100        one NVIDIA H100 80 GB                                  4.00
=========== ===================================================== ==========
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from rung.errors import SpecError, did_you_mean

__all__ = [
    "MACHINES",
    "CostFigure",
    "CostSpec",
    "Machine",
    "TokenPrice",
    "api_cost",
    "check_cost_spec",
    "machine_cost",
    "token_price",
]


@dataclass(frozen=True)
class Machine:
    name: str
    description: str
    hourly_usd: float


MACHINES: dict[str, Machine] = {
    m.name: m
    for m in (
        Machine("cpu-server", "general-purpose VM, 8 vCPU, 32 GB", 0.40),
        Machine("l4", "one NVIDIA L4 24 GB with 4 vCPU", 0.80),
        Machine("a100", "one NVIDIA A100 80 GB", 3.00),
        Machine("h100", "one NVIDIA H100 80 GB", 4.00),
    )
}


class TokenPrice(BaseModel):
    """A price per million tokens, in USD."""

    model_config = ConfigDict(extra="forbid")

    input_per_mtok: float = Field(ge=0, description="USD per million input (prompt) tokens.")
    output_per_mtok: float = Field(ge=0, description="USD per million output (completion) tokens.")


class CostSpec(BaseModel):
    """How money is counted."""

    model_config = ConfigDict(extra="forbid")

    machine: str = Field(
        default="cpu-server",
        description="Machine profile self-hosted rungs run on: cpu-server, l4, a100, h100.",
    )
    hourly_usd: float | None = Field(
        default=None,
        ge=0,
        description="Your own hourly price for that machine (overrides the profile's).",
    )
    prices: dict[str, TokenPrice] = Field(
        default_factory=dict,
        description="Per-token prices by model id, overriding the maintained price data.",
    )
    compare_with: list[str] = Field(
        default_factory=lambda: ["openai:gpt-4o-mini", "openai:gpt-4.1-nano", "openai:gpt-4o"],
        description="API models to price this workload on, without running them (the counterfactual).",
    )

    @field_validator("machine")
    @classmethod
    def _known_machine(cls, name: str) -> str:
        if name not in MACHINES:
            raise ValueError(
                f"unknown machine profile {name!r}{did_you_mean(name, MACHINES)}; "
                f"known: {', '.join(MACHINES)} (or set hourly_usd)"
            )
        return name

    def hourly(self) -> float:
        return self.hourly_usd if self.hourly_usd is not None else MACHINES[self.machine].hourly_usd


@dataclass(frozen=True)
class CostFigure:
    usd_per_1k: float | None
    basis: Literal["api", "machine"]
    detail: str

    def to_json(self) -> dict[str, object]:
        return {"usd_per_1k": self.usd_per_1k, "basis": self.basis, "detail": self.detail}


def token_price(model_id: str, spec: CostSpec) -> tuple[TokenPrice | None, str]:
    """The price of an API model and where it came from."""
    if model_id in spec.prices:
        return spec.prices[model_id], "the spec's cost.prices"
    from rung.catalog.prices import api_price
    from rung.models.registry import profile_of

    provider, _, name = model_id.partition(":")
    profile = profile_of(provider)
    at = profile.price_provider if profile is not None else None
    found = (api_price(name, at) if at is not None else None) or api_price(name, None)
    if found is None:
        return None, "no price known"
    price = TokenPrice(input_per_mtok=found.input_per_mtok, output_per_mtok=found.output_per_mtok)
    return price, f"{found.source} ({found.provider}/{found.matched_model})"


def api_cost(model_id: str, tokens_in: float, tokens_out: float, spec: CostSpec) -> CostFigure:
    """Cost of 1,000 requests of ``tokens_in`` + ``tokens_out`` tokens each."""
    price, source = token_price(model_id, spec)
    if price is None:
        return CostFigure(
            None, "api", f"no price known for {model_id}: add it under cost.prices in the spec"
        )
    usd = 1000 * (tokens_in * price.input_per_mtok + tokens_out * price.output_per_mtok) / 1e6
    return CostFigure(
        usd,
        "api",
        f"{tokens_in:.0f} in + {tokens_out:.1f} out tokens per request at "
        f"${price.input_per_mtok:g} / ${price.output_per_mtok:g} per million ({source})",
    )


def machine_cost(throughput_per_s: float | None, spec: CostSpec, where: str) -> CostFigure:
    """Cost of 1,000 requests on a machine billed by the hour, at the given throughput."""
    hourly = spec.hourly()
    label = f"${hourly:g}/h" + ("" if spec.hourly_usd is not None else f" ({spec.machine} profile)")
    if not throughput_per_s:
        return CostFigure(None, "machine", f"no throughput measured; {label}")
    usd = hourly / 3600 * (1000 / throughput_per_s)
    return CostFigure(usd, "machine", f"{throughput_per_s:.1f} requests/s {where} at {label}")


def check_cost_spec(spec: CostSpec) -> None:
    for model_id in spec.compare_with:
        if ":" not in model_id:
            raise SpecError(f"cost.compare_with: {model_id!r} is not a provider:name model id")
