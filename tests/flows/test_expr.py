"""The code step's expression language: what it computes, and what it refuses to do."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from rung.flows import expr


@dataclass
class Done:
    """A step result as the runner keeps it (output, confidence, skipped)."""

    output: Any
    confidence: float | None = None
    skipped: bool = False


def ev(text: str, **results: Any) -> Any:
    return expr.evaluate(expr.parse(text), {"n": 3, "q": " Yes "}, results)


def test_references_operators_and_functions() -> None:
    assert ev("lower(strip(inputs.q)) == 'yes'") is True
    assert ev("inputs.n * 2 + 1") == 7
    assert ev("a.output.total if a.confidence >= 0.5 else 0", a=Done({"total": 9}, 0.7)) == 9
    assert ev("a.output['items'][1]", a=Done({"items": [1, 2]})) == 2
    assert ev("'urgent' in lower(a.output)", a=Done("URGENT: help")) is True
    assert ev("len(a.output)", a=Done([1, 2, 3])) == 3
    assert ev("a.output", a=Done("x", skipped=True)) is None
    assert sorted(str(r) for r in expr.refs_of(expr.parse("a.output.x + inputs.n"))) == [
        "Ref(source='a', attr='output', fields=('x',))",
        "Ref(source='inputs', attr='n', fields=())",
    ]


@pytest.mark.parametrize(
    "text",
    [
        "__import__('os')",
        "inputs.__class__",
        "().__class__.__bases__",
        "(lambda: 1)()",
        "[x for x in 'ab']",
        "2 ** 10",
        "open('/etc/passwd')",
        "inputs.q.upper()",
        "x := 1",
        "a.output[0:2]",
    ],
)
def test_outside_the_language(text: str) -> None:
    with pytest.raises(expr.ExprError):
        expr.refs_of(expr.parse(text)).__next__()


def test_huge_values_and_bad_values_fail() -> None:
    with pytest.raises(expr.ExprError, match="over 100,000"):
        ev("'x' * 1000000000")
    with pytest.raises(expr.ExprError, match="on text"):
        ev("'%0999999999d' % 1")
    with pytest.raises(expr.ExprError, match="ZeroDivisionError"):
        ev("inputs.n / 0")
    with pytest.raises(expr.ExprError, match="over 1000"):
        expr.parse("1 + " * 400 + "1")
