"""The ``openai`` backend: any OpenAI-compatible chat completions API as a rung.

OpenAI itself, vLLM, Ollama, llama.cpp's server, llama-cpp-python's server, TGI, LiteLLM, ...:
anything that answers ``POST {base_url}/chat/completions``. The model name is the remote name
(``openai:gpt-4o-mini``; ``openai:qwen2.5:7b`` for Ollama, whose names hold colons too).

Retries are ours, not the SDK's (the client is built with ``max_retries=0``): one policy for
every server, with backoff the tests can shorten, and one error message naming the base URL and
the status code once it gives up.

Scores come from the log-probabilities of the first answer token: each top token is matched to
the labels it could begin, and the mass is normalised over the labels. Servers that refuse
``logprobs`` (some reasoning models, some gateways) are asked once more without it, and the
backend remembers not to ask again.

``generate`` (what ``rung serve`` forwards) posts plain HTTP through the SDK's HTTP library,
spread over small connection pools, and raises the SDK's own errors: behind a gateway the SDK's
request building and response models cost more CPU than the exchange itself. ``stream`` reads
the upstream's server-sent events through the SDK; closing it early closes the response.
``embed`` posts to ``/embeddings`` the same way (OpenAI's embeddings models, vLLM, Ollama,
llama.cpp servers started with embeddings on).
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import math
import os
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import ConfigurationError, MissingDependencyError, ModelAPIError
from rung.models.base import (
    ClassifyRequest,
    Embeddings,
    GenerateRequest,
    Generation,
    GenerationDelta,
    Model,
    ModelInfo,
    Prediction,
    stable_hash,
)
from rung.models.profile import AnyName, BackendProfile

if TYPE_CHECKING:
    from openai import AsyncOpenAI
    from openai.types.chat import ChatCompletion
    from openai.types.chat.chat_completion import Choice

__all__ = [
    "DEFAULT_BASE_URL",
    "OpenAIModel",
    "OpenAIOptions",
    "TopToken",
    "first_content_index",
    "label_scores",
    "parse_label",
    "retry_after_s",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: sent when the server needs no key: the SDK refuses to build a client without one
PLACEHOLDER_KEY = "not-needed"
OPENAI_HOST = "api.openai.com"
#: statuses worth another try: the server is busy, overloaded or restarting
RETRY_STATUSES = frozenset({408, 429})
#: how long an idle client keeps its connections open for the next call on the same loop
IDLE_CLOSE_S = 2.0
#: requests in flight per HTTP client of generate(): each client scans its whole connection
#: pool for every request (httpcore), so 64 requests go through 8 small pools, not one big one
POOL_SLOTS = 8


class OpenAIOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str | None = Field(
        default=None,
        description="Endpoint root, e.g. http://localhost:11434/v1 for Ollama. Default: "
        "$RUNG_OPENAI_BASE_URL, then $OPENAI_BASE_URL, then https://api.openai.com/v1.",
    )
    api_key: str | None = Field(
        default=None,
        description="API key. Default: the variable named by api_key_env, then $OPENAI_API_KEY; "
        "servers other than api.openai.com get a placeholder when no key is set.",
    )
    api_key_env: str | None = Field(
        default=None,
        description="Name of the environment variable holding the key (e.g. TOGETHER_API_KEY).",
    )
    concurrency: int = Field(
        default=8, ge=1, description="Requests in flight at once against the endpoint."
    )
    timeout_s: float = Field(default=60.0, gt=0, description="Timeout of one request, seconds.")
    max_retries: int = Field(
        default=4,
        ge=0,
        description="Extra tries after a 408, 429, 5xx, time-out or connection error.",
    )
    retry_base_delay_s: float = Field(
        default=1.0,
        ge=0,
        description="First backoff delay; it doubles each try, with jitter, up to retry_max_delay_s.",
    )
    retry_max_delay_s: float = Field(
        default=60.0,
        ge=0,
        description="Longest wait between tries, including one asked for by a Retry-After header.",
    )
    check_timeout_s: float = Field(
        default=5.0, gt=0, description="Timeout of the reachability check (GET /models)."
    )
    max_tokens: int = Field(
        default=16, ge=1, description="Longest answer to a classify request, in tokens."
    )
    logprobs: bool = Field(
        default=True,
        description="Ask for log-probabilities to score the labels; turned off by itself when "
        "the server refuses them.",
    )
    top_logprobs: int = Field(
        default=20,
        ge=1,
        le=20,
        description="Alternatives per token the server returns (OpenAI allows up to 20).",
    )
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")
    embed_batch: int = Field(
        default=256,
        ge=1,
        le=2048,
        description="Texts per embeddings request (OpenAI takes up to 2048). 1 for servers "
        "that mix up the texts of a batch: llama-cpp-python's, with a model that has no "
        "pooling layer (a chat model's GGUF), returns wrong vectors after the first text.",
    )


# ---------------------------------------------------------------------------------------------
# Pure functions: answer text to label, first-token log-probabilities to label scores.

_EDGE_CHARS = " \t\r\n\"'`*_“”‘’«»"  # quotes and markdown emphasis around an answer
_TRAILING_PUNCT = ".,;:!?"


def _normalize(text: str) -> str:
    text = text.strip(_EDGE_CHARS)
    text = text.rstrip(_TRAILING_PUNCT).strip(_EDGE_CHARS)
    return text.casefold()


def _whole_word(needle: str) -> re.Pattern[str]:
    return re.compile(r"(?<!\w)" + re.escape(needle) + r"(?!\w)")


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label an answer names, or None.

    An exact match after stripping whitespace, quotes, markdown emphasis and trailing
    punctuation, ignoring case; else the one label that appears as a whole word in the text
    (a label contained in a longer matched label, "positive" in "very positive", gives way to
    it); else None: an answer naming no label, or several, is not guessed at."""
    answer = _normalize(text)
    for label in labels:
        if answer == _normalize(label):
            return label
    folded = text.casefold()
    found = [
        lab for lab in labels if _normalize(lab) and _whole_word(_normalize(lab)).search(folded)
    ]
    if len(found) > 1:
        found = [
            lab
            for lab in found
            if not any(
                other != lab and _whole_word(_normalize(lab)).search(_normalize(other))
                for other in found
            )
        ]
    return found[0] if len(found) == 1 else None


@dataclass(frozen=True)
class TopToken:
    """One alternative the server listed for an answer token."""

    token: str
    logprob: float


def _token_text(token: str) -> str:
    # SentencePiece and GPT-2 tokenizers mark a leading space in the token itself.
    return token.replace("▁", " ").replace("Ġ", " ").strip(_EDGE_CHARS).casefold()


def first_content_index(tokens: Sequence[str]) -> int | None:
    """Index of the first answer token that holds more than whitespace, quotes or markdown;
    the label is decided there (a model answering ``"positive"`` spends its first token on
    the quote)."""
    for i, token in enumerate(tokens):
        if _token_text(token):
            return i
    return None


def label_scores(top: Sequence[TopToken], labels: Sequence[str]) -> dict[str, float]:
    """A probability per label from the alternatives of the first answer token, or {}.

    A token counts for a label when, case folded and without its leading space, it is the
    label's start ("pos", "Positive") or starts with the label ("positive."). A token that
    names one label exactly goes to that label alone; one that could begin several labels is
    split evenly between them. The mass is normalised over the labels; when no listed token
    could begin any label there is nothing to tell, and the result is empty."""
    names = [_normalize(lab) for lab in labels]
    mass = dict.fromkeys(labels, 0.0)
    for alt in top:
        text = _token_text(alt.token)
        if not text or not math.isfinite(alt.logprob):
            continue
        exact = [lab for lab, name in zip(labels, names, strict=True) if name == text]
        hits = exact or [
            lab
            for lab, name in zip(labels, names, strict=True)
            if name and (name.startswith(text) or text.startswith(name))
        ]
        for lab in hits:
            mass[lab] += math.exp(alt.logprob) / len(hits)
    total = sum(mass.values())
    if total <= 0:
        return {}
    return {lab: m / total for lab, m in mass.items()}


def retry_after_s(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` (or OpenAI's ``retry-after-ms``) header asks to wait, or None."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass  # fall through to Retry-After
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass  # not seconds: an HTTP date
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


# ---------------------------------------------------------------------------------------------


class _LogprobsRefused(ModelAPIError):
    """The server refused a request that asked for logprobs."""


@dataclass
class _LoopState:
    """A client and a semaphore belong to the event loop they were first used in: the runner
    and run_sync may drive successive batches from different loops. The client is closed when
    the last call using it ends, while its loop still runs; an unclosed client would leave its
    sockets to the garbage collector once the loop is gone."""

    loop: asyncio.AbstractEventLoop
    client: AsyncOpenAI
    slots: asyncio.Semaphore
    users: int = 0
    closer: asyncio.Task[None] | None = None
    #: the plain HTTP clients of generate() (see OpenAIModel._post), made on first use
    pools: list[Any] = field(default_factory=list)
    #: requests in flight on each of them
    busy: list[int] = field(default_factory=list)

    async def aclose(self) -> None:
        await self.client.close()
        for pool in self.pools:
            await pool.aclose()


PROFILE = BackendProfile(
    kind="api",
    card_sources=("price-list",),
    # Paid per token at OpenAI's prices (or, for a name OpenAI does not sell, the price of a
    # provider that does); an endpoint on the user's own network is self-hosted.
    pricing="tokens",
    price_provider="openai",
    any_name=AnyName(
        placeholder="<any model>",
        description="any OpenAI-compatible API (set OPENAI_API_KEY or RUNG_OPENAI_BASE_URL)",
        source="any OpenAI-compatible API",
    ),
)


class OpenAIModel(Model):
    """A model behind an OpenAI-compatible chat completions endpoint."""

    provider: ClassVar[str] = "openai"
    Options: ClassVar[type[BaseModel]] = OpenAIOptions
    profile: ClassVar[BackendProfile] = PROFILE
    can_generate: ClassVar[bool] = True
    can_stream: ClassVar[bool] = True
    #: through ``POST /embeddings``; a server that does not serve it says so on the first call
    can_embed: ClassVar[bool] = True
    in_process: ClassVar[bool] = False  # the model runs behind the API

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        assert isinstance(self.options, OpenAIOptions)
        self.opts: OpenAIOptions = self.options
        self.max_concurrency = self.opts.concurrency
        # The environment is read here, once: the fingerprint and the requests agree on it.
        self.base_url = (
            self.opts.base_url
            or os.environ.get("RUNG_OPENAI_BASE_URL")
            or os.environ.get("OPENAI_BASE_URL")
            or DEFAULT_BASE_URL
        ).rstrip("/")
        self._api_key = self._resolve_key()
        self._use_logprobs = self.opts.logprobs
        self._stream_usage = True  # ask for the usage chunk until a server refuses it
        self._client_factory: Callable[[], AsyncOpenAI] | None = None
        self._http: Any = None  # the HTTP library the SDK is built on, once loaded
        self._tls: Any = None
        self._state: _LoopState | None = None

    # -- configuration ------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return self.base_url

    @property
    def _is_openai(self) -> bool:
        return urlsplit(self.base_url).hostname == OPENAI_HOST

    def _resolve_key(self) -> str | None:
        if self.opts.api_key:
            return self.opts.api_key
        if self.opts.api_key_env and os.environ.get(self.opts.api_key_env):
            return os.environ[self.opts.api_key_env]
        if os.environ.get("OPENAI_API_KEY"):
            return os.environ["OPENAI_API_KEY"]
        # Local servers (Ollama, vLLM without --api-key, llama.cpp) accept any key.
        return None if self._is_openai else PLACEHOLDER_KEY

    def _key_hint(self) -> str:
        where = f"${self.opts.api_key_env}" if self.opts.api_key_env else "OPENAI_API_KEY"
        return f"set {where} or options.api_key"

    def _unreachable(self, reason: str) -> ModelAPIError:
        return ModelAPIError(
            f"cannot reach {self.base_url}: {reason}; check options.base_url or "
            "RUNG_OPENAI_BASE_URL and that the server is running"
        )

    def _refused_key(self, status: int) -> ConfigurationError:
        return ConfigurationError(
            f"{self.base_url} refused the API key for {self.model_id} (HTTP {status}): "
            f"{self._key_hint()} to a valid key"
        )

    # -- lifecycle ----------------------------------------------------------------------------

    def check(self) -> None:
        """The key is there, and ``GET {base_url}/models`` answers (one request)."""
        import httpx

        self._api_key = self._resolve_key()
        if self._api_key is None:
            raise ConfigurationError(f"no API key for {self.model_id}: {self._key_hint()}")
        url = f"{self.base_url}/models"
        try:
            response = httpx.get(
                url,
                headers={"Authorization": f"Bearer {self._api_key}"},
                timeout=self.opts.check_timeout_s,
            )
        except httpx.TimeoutException:
            raise self._unreachable(
                f"no answer within {self.opts.check_timeout_s:g} s (options.check_timeout_s)"
            ) from None
        except httpx.TransportError as e:
            raise self._unreachable(str(e) or type(e).__name__) from None
        except httpx.InvalidURL as e:
            raise ConfigurationError(
                f"invalid base URL {self.base_url!r} for {self.model_id}: {e}; "
                "set options.base_url to e.g. http://localhost:8000/v1"
            ) from None
        status = response.status_code
        if status == 401:
            raise self._refused_key(status)
        if status == 404:
            hint = (
                "set options.base_url to the API root of an OpenAI-compatible server"
                if urlsplit(self.base_url).path.endswith("/v1")
                else "OpenAI-compatible servers serve their API under /v1: try "
                f"options.base_url {self.base_url}/v1"
            )
            raise ModelAPIError(f"{url} answered HTTP 404; {hint}", status_code=status)
        if status >= 500:
            raise ModelAPIError(
                f"{url} answered HTTP {status}: the server is up but failing; check its logs",
                status_code=status,
            )
        if status == 200:
            self._warn_if_unlisted(response)

    def _warn_if_unlisted(self, response: Any) -> None:
        # Some servers (llama.cpp) answer any name, so an unlisted name is only a warning.
        try:
            listed = [m["id"] for m in response.json().get("data", [])]
        except (ValueError, TypeError, KeyError, AttributeError):
            return  # a non-standard /models body says nothing about the name
        if listed and self.name not in listed:
            shown = ", ".join(listed[:10]) + (", ..." if len(listed) > 10 else "")
            log.warning("%s does not list model %r (it lists: %s)", self.base_url, self.name, shown)

    def load(self) -> None:
        try:
            import openai
        except ImportError as e:
            raise MissingDependencyError("the openai backend", "pip install openai") from e
        if self._api_key is None:
            raise ConfigurationError(f"no API key for {self.model_id}: {self._key_hint()}")
        key = self._api_key
        base_url, timeout = self.base_url, self.opts.timeout_s

        def factory() -> AsyncOpenAI:
            return openai.AsyncOpenAI(
                base_url=base_url, api_key=key, timeout=timeout, max_retries=0
            )

        self._client_factory = factory
        self._http = _sdk_http_library()
        self._state = None

    def _pool(self, state: _LoopState) -> int:
        """The least busy of the loop's HTTP clients for generate(), made on first use."""
        if not state.pools:
            http = self._http
            if self._tls is None:
                self._tls = http.create_ssl_context()  # one per model: each costs milliseconds
            headers = {"Authorization": f"Bearer {self._api_key}"}
            limits = http.Limits(max_connections=None, max_keepalive_connections=POOL_SLOTS)
            state.pools = [
                http.AsyncClient(
                    base_url=self.base_url,
                    headers=headers,
                    timeout=self.opts.timeout_s,
                    limits=limits,
                    verify=self._tls,
                    follow_redirects=True,  # as the SDK's client does
                )
                for _ in range(-(-self.opts.concurrency // POOL_SLOTS))
            ]
            state.busy = [0] * len(state.pools)
        return min(range(len(state.busy)), key=state.busy.__getitem__)

    def close(self) -> None:
        # Nothing to free: each client is closed when the last call using it ends (_session).
        self._state = None
        self._client_factory = None

    async def aclose(self) -> None:
        """close(), from the loop that made the calls (a server shutting down): the idle client
        is closed now, not left to a closer task that the loop may never run again."""
        state = self._state
        self.close()
        if state is None or state.loop is not asyncio.get_running_loop():
            return
        if state.closer is not None:
            state.closer.cancel()  # it closes the client on its way out
            with contextlib.suppress(asyncio.CancelledError):
                await state.closer

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncIterator[_LoopState]:
        if self._client_factory is None:
            raise RuntimeError(f"{self.model_id} is not loaded: call load() first")
        loop = asyncio.get_running_loop()
        if self._state is None or self._state.loop is not loop:
            self._state = _LoopState(
                loop, self._client_factory(), asyncio.Semaphore(self.opts.concurrency)
            )
        state = self._state
        if state.closer is not None:
            state.closer.cancel()  # a call came in during the idle grace: keep the connections
            state.closer = None
        state.users += 1
        try:
            yield state
        finally:
            state.users -= 1
            if state.users == 0:
                # Back-to-back calls (one user of a load test, a server's steady traffic) reuse
                # the client and its connections; an idle one is closed while its loop still
                # runs, also when the loop ends first (asyncio.run cancels the closer).
                state.closer = loop.create_task(self._close_when_idle(state))

    async def _close_when_idle(self, state: _LoopState) -> None:
        try:
            await asyncio.sleep(IDLE_CLOSE_S)
        finally:
            if state.users == 0:
                if self._state is state:
                    self._state = None
                await state.aclose()

    # -- requests -----------------------------------------------------------------------------

    async def _chat(self, state: _LoopState, body: dict[str, Any]) -> ChatCompletion:
        """One chat completion, holding one of the endpoint's slots (see ``_retrying``)."""
        from openai.types.chat import ChatCompletion as completion_type

        async with state.slots:
            # post() skips the SDK's per-call transform of the parameters (a quarter of the
            # client's time per request) and raises the same errors.
            return await self._retrying(
                body,
                lambda: state.client.post("/chat/completions", body=body, cast_to=completion_type),
            )

    async def _retrying(
        self,
        body: dict[str, Any],
        call: Callable[[], Awaitable[T]],
        final: Callable[[int, str], bool] | None = None,
    ) -> T:
        """``call()``, tried again after 408/429/5xx, time-outs and connection errors with
        exponential backoff and jitter (or the server's Retry-After), then a ModelAPIError.
        When the body asks for logprobs, an error that is about them (any 400 or 422, or a
        message naming logprobs, as llama-cpp-python's 500 does) is raised at once as
        _LogprobsRefused, so that the caller can ask again without them. ``final(status,
        message)`` True marks an error that no retry will cure: it is raised at once."""
        import openai

        asked_logprobs = bool(body.get("logprobs"))
        tries = self.opts.max_retries + 1
        for attempt in range(tries):
            delay: float | None = None
            try:
                return await call()
            except openai.APIStatusError as e:
                status = e.status_code
                where = f"{self.model_id} at {self.base_url} answered HTTP {status}"
                if status == 401:
                    raise self._refused_key(status) from e
                if asked_logprobs and (status in (400, 422) or "logprob" in _message(e).casefold()):
                    raise _LogprobsRefused(f"{where}: {_message(e)}", status) from e
                if final is not None and final(status, _message(e)):
                    raise ModelAPIError(f"{where}: {_message(e)}", status_code=status) from e
                if status not in RETRY_STATUSES and status < 500:
                    raise ModelAPIError(f"{where}: {_message(e)}", status_code=status) from e
                if attempt == tries - 1:
                    raise ModelAPIError(
                        f"{where} {tries} times in a row ({_message(e)}); lower "
                        "options.concurrency or raise options.max_retries",
                        status_code=status,
                    ) from e
                delay = retry_after_s(e.response.headers)
            except openai.APIConnectionError as e:  # time-outs included
                if attempt == tries - 1:
                    what = (
                        f"no answer within {self.opts.timeout_s:g} s (options.timeout_s)"
                        if isinstance(e, openai.APITimeoutError)
                        else _message(e).rstrip(".")
                    )
                    raise self._unreachable(f"{what} ({tries} tries)") from e
            await asyncio.sleep(self._backoff(attempt, delay))
        raise AssertionError("unreachable: the loop returns or raises")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.opts.retry_max_delay_s)
        ceiling = min(self.opts.retry_base_delay_s * 2**attempt, self.opts.retry_max_delay_s)
        # Jitter spreads the retries of concurrent requests that failed together.
        return ceiling * random.uniform(0.5, 1.0)

    async def _classify_one(self, state: _LoopState, request: ClassifyRequest) -> Prediction:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": self.opts.temperature,
            "max_tokens": self.opts.max_tokens,
        }
        if self._use_logprobs:
            try:
                completion = await self._chat(
                    state, {**body, "logprobs": True, "top_logprobs": self.opts.top_logprobs}
                )
            except _LogprobsRefused as refused:
                completion = await self._chat(state, body)
                # Remembered only once the plain request worked: then logprobs were the cause.
                if self._use_logprobs:
                    self._use_logprobs = False
                    log.warning(
                        "%s; %s goes on without logprobs, so without label scores",
                        refused,
                        self.model_id,
                    )
        else:
            completion = await self._chat(state, body)
        return _prediction(self._first_choice(completion), completion, request.labels)

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        if len(requests) == 1:  # the common case, without a task group's overhead
            async with self._session() as state:
                return [await self._classify_one(state, requests[0])]
        tasks: list[asyncio.Task[Prediction]] = []
        try:
            async with self._session() as state, asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._classify_one(state, r)) for r in requests]
        except BaseExceptionGroup as eg:
            # One failed request fails the batch (the others were cancelled); its error is
            # the one to show, not a group wrapping it.
            raise eg.exceptions[0] from None
        return [t.result() for t in tasks]

    def _generate_body(self, request: GenerateRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.name,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
            "max_tokens": request.max_tokens,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        return body

    async def generate(self, request: GenerateRequest) -> Generation:
        body = self._generate_body(request)
        async with self._session() as state, state.slots:
            data = await self._retrying(body, lambda: self._post(state, body))
        choices = data.get("choices") if isinstance(data, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise ModelAPIError(
                f"{self.model_id} at {self.base_url} answered with no choices; "
                "check that the server implements chat completions"
            )
        choice = choices[0]
        message = choice.get("message") or {}
        usage = data.get("usage") or {}
        return Generation(
            text=str(message.get("content") or ""),
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            finish_reason=choice.get("finish_reason"),
        )

    async def _post(
        self, state: _LoopState, body: dict[str, Any], path: str = "/chat/completions"
    ) -> Any:
        """``POST {path}`` (chat completions by default) as plain HTTP, the answer as parsed JSON: the SDK's request
        building and response models take twice the CPU of the HTTP exchange itself, which is
        what a gateway in front of a fast upstream pays for most (benchmarks/bench_gateway.py).
        Failures are raised as the SDK's own errors, so that ``_retrying`` treats both paths
        alike."""
        import openai

        http = self._http
        pool = self._pool(state)
        state.busy[pool] += 1
        try:
            response = await state.pools[pool].post(
                path,
                content=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
        except http.TimeoutException as e:
            raise openai.APITimeoutError(request=e.request) from e
        except http.TransportError as e:
            raise openai.APIConnectionError(message=_message(e), request=e.request) from e
        finally:
            state.busy[pool] -= 1
        if response.status_code >= 400:
            # the SDK's own mapping of a status to its error class and message
            raise state.client._make_status_error_from_response(response)
        try:
            return json.loads(response.content)
        except ValueError:
            raise ModelAPIError(
                f"{self.model_id} at {self.base_url} answered HTTP {response.status_code} with "
                f"a body that is not JSON ({response.text[:80]!r}); check options.base_url"
            ) from None

    async def stream(self, request: GenerateRequest) -> AsyncIterator[GenerationDelta]:
        """The upstream's own stream (server-sent events), a delta per chunk with content.

        Retries happen before the first chunk only, as for generate. The token counts come from
        the usage chunk that ``stream_options.include_usage`` asks for; a server that sends
        none (llama-cpp-python's) gets 0 prompt tokens and a completion token per content
        chunk. Closing the iterator early closes the upstream response, which tells the server
        to stop generating."""
        import openai
        from openai.types.chat import ChatCompletion as completion_type
        from openai.types.chat import ChatCompletionChunk

        body = self._generate_body(request) | {"stream": True}
        if self._stream_usage:
            body["stream_options"] = {"include_usage": True}

        def call(body: dict[str, Any]) -> Awaitable[openai.AsyncStream[ChatCompletionChunk]]:
            return state.client.post(
                "/chat/completions",
                body=body,
                cast_to=completion_type,
                stream=True,
                stream_cls=openai.AsyncStream[ChatCompletionChunk],
            )

        async with self._session() as state, state.slots:
            try:
                chunks = await self._retrying(body, lambda: call(body))
            except ModelAPIError as e:
                # Servers that predate stream_options may refuse it; ask once more without.
                if e.status_code not in (400, 422) or "stream_options" not in str(e):
                    raise
                self._stream_usage = False
                body.pop("stream_options")
                chunks = await self._retrying(body, lambda: call(body))
            finish: str | None = None
            usage: tuple[int, int] | None = None
            pieces = 0
            try:
                async for chunk in chunks:
                    if chunk.usage is not None:
                        usage = (
                            int(chunk.usage.prompt_tokens or 0),
                            int(chunk.usage.completion_tokens or 0),
                        )
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    finish = choice.finish_reason or finish
                    if choice.delta.content:
                        pieces += 1
                        yield GenerationDelta(choice.delta.content)
            except openai.APIConnectionError as e:  # time-outs included
                raise self._unreachable(f"the answer broke off ({_message(e).rstrip('.')})") from e
            except openai.APIError as e:  # an error event in the stream
                raise ModelAPIError(
                    f"{self.model_id} at {self.base_url} failed mid-answer: {_message(e)}"
                ) from e
            finally:
                await chunks.close()
        tokens_in, tokens_out = usage if usage is not None else (0, pieces)
        yield GenerationDelta(
            "", finish_reason=finish or "stop", tokens_in=tokens_in, tokens_out=tokens_out
        )

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """``POST {base_url}/embeddings``, ``options.embed_batch`` texts a request, the requests in
        flight at once bounded by ``options.concurrency``. The API counts tokens per request,
        not per text: each request's count is shared among its texts in proportion to their
        length, so that the totals (what a ledger charges) are the API's own."""
        import numpy as np

        if not texts:
            return Embeddings(np.zeros((0, 0), dtype=np.float32), [])
        size = self.opts.embed_batch
        batches = [list(texts[i : i + size]) for i in range(0, len(texts), size)]

        async def one(state: _LoopState, batch: list[str]) -> tuple[list[list[float]], list[int]]:
            body = {"model": self.name, "input": batch, "encoding_format": "float"}
            async with state.slots:
                try:
                    data = await self._retrying(
                        body, lambda: self._post(state, body, "/embeddings"), _not_embedding
                    )
                except ModelAPIError as e:
                    if e.status_code is not None and _not_embedding(e.status_code, str(e)):
                        raise ModelAPIError(
                            f"{self.model_id} does not make embeddings ({e}); use an "
                            "embeddings model (llama.cpp servers: start them with embeddings "
                            "on, e.g. --embedding true)",
                            status_code=e.status_code,
                        ) from e
                    raise
            return _embedding_rows(data, batch, self.model_id, self.base_url)

        async with self._session() as state:
            parts = await asyncio.gather(*(one(state, b) for b in batches))
        rows = [row for vectors, _ in parts for row in vectors]
        tokens = [n for _, counts in parts for n in counts]
        return Embeddings(np.asarray(rows, dtype=np.float32), tokens)

    def _first_choice(self, completion: ChatCompletion) -> Choice:
        if not completion.choices:
            raise ModelAPIError(
                f"{self.model_id} at {self.base_url} answered with no choices; "
                "check that the server implements chat completions"
            )
        return completion.choices[0]

    # -- facts ----------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        return ModelInfo(extra={"base_url": self.base_url})

    def fingerprint(self) -> str:
        # What changes the answers: where, which model, how it is asked. Never the key.
        asked = self.opts.model_dump(
            include={"max_tokens", "logprobs", "top_logprobs", "temperature"}
        )
        return stable_hash({"id": self.model_id, "base_url": self.base_url, "options": asked})


def _sdk_http_library() -> Any:
    """httpx2 for openai 3, httpx before it: the HTTP library the SDK is built on, whose
    errors the SDK wraps."""
    import importlib

    import openai

    base = next(c for c in openai.DefaultAsyncHttpxClient.__mro__ if c.__name__ == "AsyncClient")
    return importlib.import_module(base.__module__.partition(".")[0])


def _message(e: Exception) -> str:
    return str(getattr(e, "message", None) or e) or type(e).__name__


def _not_embedding(status: int, message: str) -> bool:
    """The server has no embeddings endpoint, or the model cannot embed (llama.cpp answers a
    500 that says embedding=True is needed): asking again will not help."""
    return status in (404, 405, 501) or "embedding" in message.casefold()


def _embedding_rows(
    data: Any, batch: Sequence[str], model_id: str, base_url: str
) -> tuple[list[list[float]], list[int]]:
    """The vectors of an embeddings answer in input order, and tokens per text."""
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list) or len(items) != len(batch):
        raise ModelAPIError(
            f"{model_id} at {base_url} answered /embeddings with "
            f"{len(items) if isinstance(items, list) else 'no'} vectors for {len(batch)} texts; "
            "check that it is an OpenAI-compatible embeddings endpoint"
        )
    import numpy as np

    ordered = sorted(items, key=lambda item: int(item.get("index", 0)))
    vectors: list[list[float]] = []
    for item in ordered:
        value = np.asarray(item["embedding"], dtype=np.float64)
        # llama.cpp serves one vector per token for a model without a pooling layer (a chat
        # model's GGUF): their mean, as sentence-transformers pools an encoder's tokens
        vectors.append((value.mean(axis=0) if value.ndim == 2 else value).tolist())
    if len({len(v) for v in vectors}) > 1 or not vectors[0]:
        raise ModelAPIError(f"{model_id} at {base_url} answered vectors of differing lengths")
    usage = data.get("usage") or {}
    total = int(usage.get("prompt_tokens") or usage.get("total_tokens") or 0)
    lengths = [max(1, len(t)) for t in batch]
    shares = [total * n // sum(lengths) for n in lengths]
    shares[-1] += total - sum(shares)  # the rounding goes to the last text: the sum is exact
    return vectors, shares


def _usage(completion: ChatCompletion) -> tuple[int, int]:
    usage = completion.usage
    if usage is None:
        return 0, 0
    return int(usage.prompt_tokens or 0), int(usage.completion_tokens or 0)


def _prediction(choice: Choice, completion: ChatCompletion, labels: Sequence[str]) -> Prediction:
    text = choice.message.content or ""
    label = parse_label(text, labels)
    scores: dict[str, float] = {}
    content = choice.logprobs.content if choice.logprobs else None
    if content:
        index = first_content_index([t.token for t in content])
        if index is not None:
            top = [TopToken(alt.token, alt.logprob) for alt in content[index].top_logprobs or []]
            scores = label_scores(top, labels)
    tokens_in, tokens_out = _usage(completion)
    return Prediction(
        label=label,
        scores=scores,
        confidence=scores.get(label) if label is not None and scores else None,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        raw=text,
    )
