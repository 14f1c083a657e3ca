"""Token prices and machine-time costs moved to ``rung.catalog.costs`` (below compare, so that
route and tune use them without importing a peer); this module keeps the old import path."""

from rung.catalog.costs import (
    MACHINES,
    CostFigure,
    CostSpec,
    Machine,
    TokenPrice,
    api_cost,
    check_cost_spec,
    machine_cost,
    token_price,
)

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
