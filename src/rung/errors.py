"""Every error rung raises on purpose, in one tree.

    RungError                    a problem the user can fix; its message says how
    ├── SpecError                the spec file: YAML, unknown or invalid fields
    ├── DataError                a data file: missing, unreadable, empty, wrong columns or labels
    ├── ModelNotFoundError       an unknown provider or model name (with "did you mean")
    ├── MissingDependencyError   an optional extra is not installed (names the pip command)
    ├── ModelLoadError           a model file or folder that cannot be loaded (corrupt GGUF, ...)
    │   └── ModelCrashError      a rung's process died by a signal while it loaded or answered
    ├── ConfigurationError       a missing API key, base URL or option
    ├── ModelAPIError            a remote model answered with an error or could not be reached
    └── RunError                 an output folder that cannot be written

The CLI turns a RungError into one line on stderr and exit status 2; the server (later) into a
4xx JSON body. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches

from pydantic import ValidationError

__all__ = [
    "ConfigurationError",
    "DataError",
    "MissingDependencyError",
    "ModelAPIError",
    "ModelCrashError",
    "ModelLoadError",
    "ModelNotFoundError",
    "RunError",
    "RungError",
    "SpecError",
    "did_you_mean",
    "validation_message",
]


class RungError(Exception):
    """A problem the user can fix. The message says what is wrong and what to do."""


class SpecError(RungError):
    pass


class DataError(RungError):
    pass


class ModelNotFoundError(RungError):
    pass


class MissingDependencyError(RungError):
    def __init__(self, what: str, install: str) -> None:
        super().__init__(
            f"{what} needs an optional dependency that is not installed: run `{install}`"
        )
        self.install = install


class ModelLoadError(RungError):
    pass


class ModelCrashError(ModelLoadError):
    """Native code (llama.cpp, torch) killed the process that ran the rung: the message names
    the rung, the signal, what it was doing and what to try."""

    def __init__(self, message: str, *, model_id: str, signal: str, stage: str) -> None:
        super().__init__(message)
        self.model_id = model_id
        self.signal = signal
        self.stage = stage


class ConfigurationError(RungError):
    pass


class ModelAPIError(RungError):
    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class RunError(RungError):
    pass


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    matches = get_close_matches(word, list(choices), n=2, cutoff=0.5)
    if not matches:
        return ""
    return " (did you mean " + " or ".join(repr(m) for m in matches) + "?)"


def validation_message(e: ValidationError) -> str:
    """A pydantic error as one line a user can act on: which field, and what to do."""
    parts = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field {loc!r}; remove it or check its spelling")
        elif err["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
    return "; ".join(parts)
