"""Request bodies: read, parse and validate them, or say exactly what is wrong.

The OpenAI-compatible bodies ignore fields they do not know (clients send many optional
parameters, such as ``top_p`` or ``user``, that do not change what a rung answers) but refuse
the ones that would change the answer and that rung cannot honour (``n`` > 1, tools, logprobs).
rung's own bodies (``/v1/classify``) forbid unknown fields.
"""

from __future__ import annotations

import json
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.requests import Request

from rung.models.base import ChatMessage
from rung.serve.config import LimitsSpec
from rung.serve.errors import ApiError

__all__ = [
    "AskBody",
    "ChatBody",
    "ClassifyBody",
    "CompletionBody",
    "EmbeddingBody",
    "MessageIn",
    "read_json",
]

B = TypeVar("B", bound=BaseModel)


class _OpenAIBody(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, description="A name from GET /v1/models.")

    @model_validator(mode="before")
    @classmethod
    def _refuse_unsupported(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        n = data.get("n")
        if n not in (None, 1):
            raise ValueError(f"n={n} is not supported: rung answers one choice per request")
        for name in ("tools", "functions", "tool_choice", "response_format", "suffix"):
            if data.get(name) not in (None, [], {"type": "text"}, "none", "auto"):
                raise ValueError(f"{name} is not supported by rung serve; remove it")
        for name in ("logprobs", "top_logprobs", "echo"):
            if data.get(name) not in (None, False, 0):
                raise ValueError(f"{name} is not supported by rung serve; remove it")
        return data


class TextPart(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str


class MessageIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = None

    def to_message(self) -> ChatMessage:
        text = self.content if isinstance(self.content, str) else ""
        if isinstance(self.content, list):
            text = "".join(part.text for part in self.content)
        # "developer" is OpenAI's newer name for the system role
        role: Literal["system", "user", "assistant"] = (
            "system" if self.role == "developer" else self.role
        )
        return ChatMessage(role, text)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")

    include_usage: bool = False


class _Generating(_OpenAIBody):
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(
        default=0.0, ge=0.0, le=2.0, description="Default 0: the same answer every time."
    )
    stop: str | list[str] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> tuple[str, ...]:
        if self.stop is None:
            return ()
        return (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)


class ChatBody(_Generating):
    messages: list[MessageIn] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)

    def chat(self) -> tuple[ChatMessage, ...]:
        return tuple(m.to_message() for m in self.messages)


class CompletionBody(_Generating):
    prompt: str | list[str]

    def prompts(self) -> list[str]:
        return [self.prompt] if isinstance(self.prompt, str) else list(self.prompt)


class EmbeddingBody(_OpenAIBody):
    input: str | list[str] | list[int] | list[list[int]]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)

    def texts(self) -> list[str]:
        if isinstance(self.input, str):
            return [self.input]
        if all(isinstance(x, str) for x in self.input):
            return [str(x) for x in self.input]
        raise ApiError(
            400,
            "input as token ids is not supported: send the texts themselves",
            code="invalid_input",
            param="input",
        )


class ClassifyBody(BaseModel):
    """POST /v1/classify: label one text or a batch."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, description="A name from GET /v1/models.")
    input: str | list[str] = Field(description="One text, or a list of texts.")
    labels: list[str] | None = Field(
        default=None,
        description="Labels to choose from, for rungs that do not train (default: the model's).",
    )

    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class AskBody(BaseModel):
    """POST /v1/ask: a question answered from an index's passages, with citations."""

    model_config = ConfigDict(extra="forbid")

    question: str = Field(description="What the user asks.")
    model: str = Field(min_length=1, description="A name from GET /v1/models (or cascade:NAME).")
    index: str | None = Field(
        default=None, description="An index of the serve config (default: its ask.index)."
    )
    k: int | None = Field(default=None, ge=1, le=50, description="Passages to retrieve.")
    mode: Literal["hybrid", "vector", "keyword"] | None = Field(
        default=None, description="Retrieval mode (default: the config's ask.mode)."
    )
    min_confidence: float | None = Field(
        default=None, ge=0, le=1, description="A cascade climbs below this grounded confidence."
    )
    max_tokens: int | None = Field(default=None, ge=1)
    stream: bool = False


_JSON_TYPES = ("application/json",)


async def read_json(request: Request, body_type: type[B], limits: LimitsSpec) -> B:
    """The request's JSON body as ``body_type``; ApiError 415, 413 or 400 when it is not one."""
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media not in _JSON_TYPES and not (
        media.startswith("application/") and media.endswith("+json")
    ):
        raise ApiError(
            415,
            f"unsupported content type {content_type or '(none)'!r}: send the body as JSON with "
            "the header 'Content-Type: application/json'",
            code="unsupported_media_type",
        )
    declared = request.headers.get("content-length")
    too_large = ApiError(
        413,
        f"request body over {limits.max_body_bytes:,} bytes: send fewer or shorter inputs",
        code="body_too_large",
    )
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    try:
        data = json.loads(raw.decode("utf-8"))  # JSON on the wire is UTF-8 (RFC 8259)
    except UnicodeDecodeError:
        raise ApiError(400, "the body is not UTF-8 text: send JSON", code="invalid_json") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        message = "empty body" if not raw.strip() else f"malformed JSON at {where}: {e.msg}"
        raise ApiError(400, f"{message}; send a JSON object", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            f'the body is a JSON {type(data).__name__}, not an object: send {{"model": ...}}',
            code="invalid_json",
        )
    return body_type.model_validate(data)
