"""Model ids (``provider:name``) to backend instances.

Backends register through the ``rung.backends`` entry-point group; rung's own built-ins are
declared in its pyproject.toml exactly as a plugin would declare its own. The entry point is
loaded (the backend module imported) only when a model of that provider is asked for, and
backend modules import their heavy libraries only in ``load()``. What each backend declares
about its models (``Model.profile``) is read through ``profile_of``; ``bundled_models`` lists
the names the profiles declare.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from rung.errors import ModelNotFoundError, SpecError, did_you_mean
from rung.models.base import Model
from rung.models.profile import BackendProfile, BundledModel

__all__ = [
    "BundledModel",
    "backend_class",
    "bundled_models",
    "create",
    "parse_model_id",
    "profile_of",
    "providers",
]

GROUP = "rung.backends"


@cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def providers() -> list[str]:
    return sorted(_entry_points())


def backend_class(provider: str) -> type[Model]:
    eps = _entry_points()
    if provider not in eps:
        raise ModelNotFoundError(
            f"unknown model provider {provider!r}{did_you_mean(provider, eps)}; "
            f"known providers: {', '.join(sorted(eps))}"
        )
    try:
        cls = eps[provider].load()
    except ImportError as e:
        raise ModelNotFoundError(
            f"the backend for {provider!r} ({eps[provider].value}) cannot be imported: {e}; "
            "reinstall the package that provides it"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise ModelNotFoundError(
            f"entry point {provider!r} in group {GROUP!r} is not a rung Model subclass"
        )
    return cls


def parse_model_id(model_id: str) -> tuple[str, str]:
    provider, sep, name = model_id.partition(":")
    if not sep or not provider or not name:
        known = [b.model_id for b in bundled_models()]
        raise ModelNotFoundError(
            f"model id {model_id!r} is not of the form provider:name{did_you_mean(model_id, known)}; "
            "run `rung models` to list the ids available here"
        )
    return provider, name


def create(model_id: str, options: dict[str, Any] | None = None) -> Model:
    """A backend instance for ``model_id``, with options validated against its Options model.
    Nothing heavy happens here: call ``check()`` and ``load()`` on the result."""
    provider, name = parse_model_id(model_id)
    cls = backend_class(provider)
    try:
        opts: BaseModel = cls.Options.model_validate(options or {})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}"
            for err in e.errors()
        )
        raise SpecError(f"invalid options for {model_id}: {problems}") from None
    return cls(name, opts)


def profile_of(provider: str) -> BackendProfile | None:
    """The profile of the backend for ``provider``; None when no installed backend has that
    name (a price-only id such as ``anthropic:claude-3-5-haiku``, a plugin not installed)."""
    try:
        return backend_class(provider).profile
    except ModelNotFoundError:
        return None


def bundled_models() -> list[BundledModel]:
    """Every name the installed backends know without a path, for ``rung models`` and
    "did you mean" suggestions."""
    found: list[BundledModel] = []
    for provider in providers():
        try:
            cls = backend_class(provider)
        except ModelNotFoundError:
            continue
        found.extend(cls.bundled())
    return found
