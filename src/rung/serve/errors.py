"""The one place an exception becomes an HTTP error: an OpenAI-shaped JSON body.

    {"error": {"message": "...", "type": "invalid_request_error", "code": "...", "param": null}}

Problems the server finds itself (no key, over the rate limit, malformed JSON, unknown model)
are raised as ``ApiError`` with their status; rung's own errors are mapped here by class; a
request body that fails validation is a 400 naming the field. Anything else is a bug: a 500
whose body says so without leaking internals, and whose traceback goes to the log.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelAPIError,
    ModelLoadError,
    ModelNotFoundError,
    RunError,
    RungError,
    SpecError,
)
from rung.flows.run import FlowStepError

__all__ = ["ApiError", "describe", "error_body", "error_response", "validation_message"]

log = logging.getLogger("rung.serve")


@dataclass
class ApiError(Exception):
    """An error the server answers with ``status``; ``message`` says what to do."""

    status: int
    message: str
    type: str = "invalid_request_error"
    code: str | None = None
    param: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message


# (status, type, code) per class of rung's errors; the first match in this order wins.
_RUNG_ERRORS: list[tuple[type[RungError], int, str, str]] = [
    (ModelNotFoundError, 404, "invalid_request_error", "model_not_found"),
    (SpecError, 400, "invalid_request_error", "invalid_request"),
    (DataError, 400, "invalid_request_error", "invalid_input"),
    # raised per request when an input does not fit the model (context too short, ...)
    (ConfigurationError, 400, "invalid_request_error", "invalid_for_model"),
    (ModelAPIError, 502, "upstream_error", "upstream_error"),
    (MissingDependencyError, 503, "server_error", "missing_dependency"),
    (ModelLoadError, 503, "server_error", "model_unavailable"),
    (RunError, 500, "server_error", "run_error"),
]

_HTTP_CODES = {
    404: ("not_found", "no such endpoint: see GET /v1/models and the README for the API"),
    405: ("method_not_allowed", "method not allowed on this endpoint"),
}


def validation_message(e: ValidationError) -> tuple[str, str | None]:
    """What is wrong with a request body, field by field, and the first field named."""
    parts = []
    first: str | None = None
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        first = first or loc or None
        if err["type"] == "extra_forbidden":
            parts.append(f"unknown field {loc!r}; remove it or check its spelling")
        elif err["type"] == "missing":
            parts.append(f"missing field {loc!r}")
        else:
            parts.append(f"{loc or 'body'}: {err['msg'].removeprefix('Value error, ')}")
    return "invalid request body: " + "; ".join(parts), first


def describe(exc: BaseException) -> ApiError:
    """The HTTP error for ``exc``."""
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, ValidationError):
        message, param = validation_message(exc)
        return ApiError(400, message, code="invalid_request", param=param)
    if isinstance(exc, FlowStepError):
        kind = "invalid_request_error" if exc.status < 500 else "server_error"
        return ApiError(exc.status, str(exc), kind, "flow_step_failed", param=exc.step)
    if isinstance(exc, RungError):
        for cls, status, kind, code in _RUNG_ERRORS:
            if isinstance(exc, cls):
                if isinstance(exc, ModelAPIError) and exc.status_code == 429:
                    return ApiError(503, str(exc), "upstream_error", "upstream_rate_limited")
                return ApiError(status, str(exc), kind, code)
        return ApiError(400, str(exc), code="invalid_request")
    if isinstance(exc, HTTPException):
        code, message = _HTTP_CODES.get(exc.status_code, ("http_error", str(exc.detail)))
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        return ApiError(exc.status_code, message, kind, code, headers=dict(exc.headers or {}))
    log.error("unexpected error while serving a request", exc_info=exc)
    return ApiError(
        500,
        f"internal error ({type(exc).__name__}); the server logged the traceback: please "
        "report it with the request that caused it",
        "server_error",
        "internal_error",
    )


def error_body(error: ApiError) -> dict[str, Any]:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "code": error.code,
            "param": error.param,
        }
    }


def error_response(exc: BaseException) -> JSONResponse:
    error = describe(exc)
    return JSONResponse(error_body(error), status_code=error.status, headers=error.headers)
