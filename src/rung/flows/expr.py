"""The expression language of ``code`` steps: a small, closed subset of Python's expression
syntax, parsed with ``ast`` and evaluated by walking the tree here. Nothing is passed to
``eval`` or ``exec``, so an expression can only do what this module spells out:

- literals (text, numbers, true/false as ``True``/``False``, ``None``), lists, tuples, dicts;
- references to inputs and steps without braces: ``inputs.question``, ``answer.output``,
  ``sentiment.confidence``, ``order.output.id``; ``x[0]`` and ``x["key"]`` to index;
- ``+ - * / // %``, comparisons (``== != < <= > >= in not in``), ``and or not``,
  ``a if cond else b``;
- the functions in ``FUNCTIONS`` (``len``, ``lower``, ``upper``, ``strip``, ``str``, ``int``,
  ``float``, ``round``, ``min``, ``max``, ``abs``, ``startswith``, ``endswith``, ``replace``).

No attribute access other than a reference (so no ``__class__`` walks), no names other than
references and those functions, no lambdas, comprehensions, ``**`` or imports. Texts and lists
an expression makes are capped at ``MAX_SIZE`` items, so ``"x" * 10**9`` fails instead of
eating the memory.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from rung.flows.refs import Ref, resolve

__all__ = ["FUNCTIONS", "MAX_LENGTH", "MAX_SIZE", "ExprError", "evaluate", "parse", "refs_of"]

MAX_LENGTH = 1000
MAX_SIZE = 100_000


class ExprError(ValueError):
    """An expression outside the language, or one that failed on its values."""


def _strs(fn: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if not all(isinstance(a, str) for a in args):
            raise ExprError(f"{fn.__name__.strip('_')}() takes text")
        return fn(*args)

    call.__name__ = fn.__name__
    return call


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "len": len,
    "lower": _strs(str.lower),
    "upper": _strs(str.upper),
    "strip": _strs(str.strip),
    "startswith": _strs(str.startswith),
    "endswith": _strs(str.endswith),
    "replace": _strs(str.replace),
    "str": str,
    "int": int,
    "float": float,
    "round": round,
    "min": min,
    "max": max,
    "abs": abs,
}

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}


def parse(expr: str) -> ast.expr:
    """The tree of ``expr``, checked to be inside the language."""
    if len(expr) > MAX_LENGTH:
        raise ExprError(f"the expression is over {MAX_LENGTH} characters")
    try:
        tree = ast.parse(expr.strip(), mode="eval").body
    except SyntaxError as e:
        raise ExprError(f"not an expression: {e.msg}") from None
    for node in ast.walk(tree):
        _allowed(node)
    return tree


def _ref(node: ast.expr) -> Ref | None:
    """``a.b.c`` as a reference, else None."""
    names: list[str] = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or not names:
        return None
    names.reverse()
    return Ref(node.id, names[0], tuple(names[1:]))


_NODES = (
    ast.Constant,
    ast.List,
    ast.Tuple,
    ast.Dict,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.Subscript,
    ast.Call,
    ast.Attribute,
    ast.Name,
    ast.Load,
    ast.And,
    ast.Or,
    ast.Not,
    ast.USub,
    ast.UAdd,
    *_BINARY,
    *_COMPARE,
)


def _allowed(node: ast.AST) -> None:
    if not isinstance(node, _NODES):
        raise ExprError(f"{type(node).__name__} is not part of the expression language")
    if isinstance(node, ast.Attribute) and _ref(node) is None:
        raise ExprError("only references (step.output, inputs.x) may use dots")
    if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
        raise ExprError(f"no such reference field: {node.attr}")
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            raise ExprError(f"unknown function; known: {', '.join(FUNCTIONS)}")
        if node.keywords:
            raise ExprError("functions take positional arguments only")
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        raise ExprError("slices are not part of the expression language")


def refs_of(tree: ast.expr) -> Iterator[Ref]:
    """The references an expression reads, and bare names that are not functions (errors)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            ref = _ref(node)
            # the outermost attribute of a chain is the whole reference; inner ones repeat it
            if ref is not None and not any(
                isinstance(p, ast.Attribute) and p.value is node for p in ast.walk(tree)
            ):
                yield ref
        elif isinstance(node, ast.Name) and node.id not in FUNCTIONS:
            parent_is_attr = any(
                isinstance(p, ast.Attribute) and p.value is node for p in ast.walk(tree)
            )
            if not parent_is_attr:
                raise ExprError(f"unknown name {node.id!r}: write inputs.{node.id} or a step's id")


def _sized(value: Any) -> Any:
    if isinstance(value, str | list | tuple | dict | range) and len(value) > MAX_SIZE:
        raise ExprError(f"a value the expression made is over {MAX_SIZE:,} items long")
    return value


def evaluate(tree: ast.expr, inputs: Mapping[str, Any], results: Mapping[str, Any]) -> Any:
    def ev(node: ast.expr) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Attribute):
            ref = _ref(node)
            assert ref is not None
            return resolve(ref, inputs, results)
        if isinstance(node, ast.List | ast.Tuple):
            return [ev(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {
                ev(k) if k else None: ev(v) for k, v in zip(node.keys, node.values, strict=True)
            }
        if isinstance(node, ast.BinOp):
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Mult):
                seq = left if isinstance(left, str | list) else right
                count = right if seq is left else left
                if isinstance(seq, str | list) and isinstance(count, int):
                    _sized(range(count * len(seq)))
            if isinstance(node.op, ast.Mod) and isinstance(left, str):
                # printf-style widths ("%099999999d") would make huge texts
                raise ExprError("% on text is not part of the expression language")
            return _sized(_BINARY[type(node.op)](left, right))
        if isinstance(node, ast.UnaryOp):
            value = ev(node.operand)
            if isinstance(node.op, ast.Not):
                return not value
            return -value if isinstance(node.op, ast.USub) else +value
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                result: Any = True
                for v in node.values:
                    result = ev(v)
                    if not result:
                        return result
                return result
            result = False
            for v in node.values:
                result = ev(v)
                if result:
                    return result
            return result
        if isinstance(node, ast.Compare):
            left = ev(node.left)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = ev(comparator)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.IfExp):
            return ev(node.body) if ev(node.test) else ev(node.orelse)
        if isinstance(node, ast.Subscript):
            container, key = ev(node.value), ev(node.slice)
            try:
                return container[key]
            except (KeyError, IndexError, TypeError):
                return None
        if isinstance(node, ast.Call):
            assert isinstance(node.func, ast.Name)
            return _sized(FUNCTIONS[node.func.id](*(ev(a) for a in node.args)))
        raise ExprError(f"{type(node).__name__} is not part of the expression language")

    try:
        return ev(tree)
    except ExprError:
        raise
    except (TypeError, ValueError, ZeroDivisionError, OverflowError) as e:
        raise ExprError(f"{type(e).__name__}: {e}") from None
