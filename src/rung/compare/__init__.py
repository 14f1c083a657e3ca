"""compare: run the rungs of a spec on a task's data and measure them."""

from rung.compare.pipeline import CompareResult, compare_spec, compare_spec_file
from rung.compare.spec import CompareSpec, ModelRef, load_spec, parse_spec

__all__ = [
    "CompareResult",
    "CompareSpec",
    "ModelRef",
    "compare_spec",
    "compare_spec_file",
    "load_spec",
    "parse_spec",
]
