"""The openai backend against real HTTP peers: llama-cpp-python's OpenAI-compatible server
running the bundled SmolLM2-135M, and a small scripted upstream (FlakyUpstreamDouble) for the
failures a real server does not produce on cue (429, 503, 500, 401, a refused logprobs)."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from rung.errors import ConfigurationError, ModelAPIError, SpecError
from rung.models import registry
from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    GenerationDelta,
    run_sync,
)
from rung.models.openai import (
    DEFAULT_BASE_URL,
    OpenAIModel,
    TopToken,
    first_content_index,
    label_scores,
    parse_label,
    retry_after_s,
)
from rung.tasks.classify import ClassifyTask, DataSource, TaskData, build_requests
from rung.tasks.data import Example, read_examples
from tests.llama_server import free_port, running_llama_server

LABELS = ("negative", "neutral", "positive")
FAST_RETRIES = {"retry_base_delay_s": 0.01, "retry_max_delay_s": 0.05}


def make(model_id: str, **options: Any) -> OpenAIModel:
    model = registry.create(model_id, options)
    assert isinstance(model, OpenAIModel)
    return model


# --- real server ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    with running_llama_server() as base_url:
        yield base_url


@pytest.fixture(scope="module")
def fpb_requests(fpb_path: Path) -> list[ClassifyRequest]:
    """Ten financial phrasebank sentences, three or four per label, with the task's prompt."""
    examples = read_examples(fpb_path)
    picked: list[Example] = []
    for label in LABELS:
        picked += [ex for ex in examples if ex.label == label][: 4 if label == "neutral" else 3]
    task = ClassifyTask(data=DataSource(path=fpb_path), labels=list(LABELS))
    return build_requests(task, TaskData(train=[], test=picked, labels=LABELS))


def test_classify_financial_phrasebank_on_llama_server(
    llama_url: str, fpb_requests: list[ClassifyRequest]
) -> None:
    model = make("openai:smollm2", base_url=llama_url)
    model.check()
    model.load()
    predictions = run_sync(model.classify(fpb_requests))
    model.close()

    assert len(predictions) == len(fpb_requests) == 10
    for p in predictions:
        assert p.label in (*LABELS, None)
        assert p.raw is not None
        assert p.tokens_in > 20  # the system prompt alone is longer
        assert 0 < p.tokens_out <= 16
    # llama_cpp.server returns top_logprobs for chat completions (logits_all is on by default),
    # and SmolLM2 puts some first-token mass on "Positive"/"Negative"/"Neutral" even when it
    # then writes a sentence.
    scored = [p for p in predictions if p.scores]
    assert len(scored) >= 8
    for p in scored:
        assert set(p.scores) == set(LABELS)
        assert sum(p.scores.values()) == pytest.approx(1.0)
        if p.label is not None:
            assert p.confidence == pytest.approx(p.scores[p.label])
        else:
            assert p.confidence is None


def test_batch_of_eight_runs_concurrently_on_llama_server(
    llama_url: str, fpb_requests: list[ClassifyRequest]
) -> None:
    model = make("openai:smollm2", base_url=llama_url, max_tokens=4)
    assert model.max_concurrency == 8
    model.load()
    batch = fpb_requests[:8]
    predictions = run_sync(model.classify(batch))
    assert len(predictions) == 8
    assert all(p.tokens_in > 0 and p.label in (*LABELS, None) for p in predictions)
    # A second batch from a new event loop gets a new client: run_sync's loop is gone.
    again = run_sync(model.classify(batch[:2]))
    assert [p.raw for p in again] == [p.raw for p in predictions[:2]]  # temperature 0


def test_generate_on_llama_server(llama_url: str) -> None:
    model = make("openai:smollm2", base_url=llama_url)
    model.load()
    request = GenerateRequest(
        messages=(ChatMessage("user", "Name one colour."),), max_tokens=8, stop=("\n\n",)
    )
    generation = run_sync(model.generate(request))
    assert generation.text.strip()
    assert generation.tokens_in > 0
    assert 0 < generation.tokens_out <= 8
    assert generation.finish_reason in ("stop", "length")


def test_stream_on_llama_server_arrives_token_by_token(llama_url: str) -> None:
    model = make("openai:smollm2", base_url=llama_url)
    model.load()
    assert model.can_stream
    request = GenerateRequest(
        messages=(ChatMessage("user", "Write a short poem about the sea."),), max_tokens=32
    )
    run_sync(model.generate(request))  # the prompt in the server's cache, as for the stream
    whole = run_sync(model.generate(request))

    async def timed() -> list[tuple[float, GenerationDelta]]:
        started = time.perf_counter()
        return [(time.perf_counter() - started, d) async for d in model.stream(request)]

    arrivals = run_sync(timed())
    *texts, (_, last) = arrivals
    assert "".join(d.text for _, d in texts) == whole.text
    assert len(texts) >= 16
    assert texts[0][0] < 0.5 * texts[-1][0], "the first chunk came with the last ones"
    assert last.finish_reason == whole.finish_reason
    # llama_cpp.server sends no usage chunk: a completion token per chunk, prompt unknown
    assert last.tokens_out == len(texts) and last.tokens_in == 0


def test_check_warns_when_the_server_does_not_list_the_model(
    llama_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="rung.models.openai"):
        make("openai:smollm2", base_url=llama_url).check()
        assert not caplog.records
        make("openai:gpt-4o-mini", base_url=llama_url).check()
    assert "does not list model 'gpt-4o-mini'" in caplog.text
    assert "smollm2" in caplog.text


def test_server_without_logprobs_degrades_to_label_only(
    fpb_requests: list[ClassifyRequest], caplog: pytest.LogCaptureFixture
) -> None:
    """llama-cpp-python started with logits_all=false answers logprobs requests with a 500
    naming logprobs: the backend asks again without them, once, and remembers."""
    with running_llama_server(extra_args=("--logits_all", "false")) as base_url:
        model = make("openai:smollm2", base_url=base_url, max_tokens=4, **FAST_RETRIES)
        model.load()
        with caplog.at_level(logging.WARNING, logger="rung.models.openai"):
            first = run_sync(model.classify(fpb_requests[:1]))
            rest = run_sync(model.classify(fpb_requests[1:3]))
    for p in first + rest:
        assert p.scores == {}
        assert p.confidence is None
        assert p.tokens_in > 0
    assert "logits_all=False" in caplog.text
    assert len([r for r in caplog.records if "without logprobs" in r.message]) == 1


def test_embed_on_llama_server_with_embeddings_on() -> None:
    """llama_cpp.server serves /v1/embeddings when started with embedding on; SmolLM2's GGUF
    has no pooling layer, so the server sends a vector per token and the backend averages.
    With such a model llama-cpp-python reads the wrong offsets for every text of a batch but
    the first (Llama.embed with pooling NONE), hence one text per request."""
    with running_llama_server(extra_args=("--embedding", "true")) as base_url:
        model = make("openai:smollm2", base_url=base_url, embed_batch=1)
        assert model.can_embed
        model.load()
        texts = ["Where is my parcel?", "Refunds take five days.", "Where is my parcel?"]
        embeddings = run_sync(model.embed(texts))
    vectors = embeddings.vectors
    assert vectors.shape == (3, 576) and str(vectors.dtype) == "float32"
    assert (vectors[0] == vectors[2]).all()
    assert not (vectors[0] == vectors[1]).all()
    assert len(embeddings.tokens) == 3 and all(n > 0 for n in embeddings.tokens)


def test_embed_on_a_server_without_embeddings_fails_at_once(llama_url: str) -> None:
    model = make("openai:smollm2", base_url=llama_url)  # default retries: none are made
    model.load()
    started = time.perf_counter()
    with pytest.raises(ModelAPIError, match="does not make embeddings") as info:
        run_sync(model.embed(["hello"]))
    assert time.perf_counter() - started < 1.0
    assert "--embedding true" in str(info.value)


# --- a scripted upstream ------------------------------------------------------------------------


@dataclass
class Reply:
    """One scripted answer; a 200 without ``body`` is a chat completion echoing the last user
    message (with logprobs for its first token when asked), or, for a request that streams,
    server-sent chunks of it word by word, ``chunk_delay_s`` apart, and an error event instead
    of the chunk numbered ``error_after`` when set."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    chunk_delay_s: float = 0.0
    error_after: int | None = None


def _error(status: int, message: str) -> Reply:
    return Reply(status, body={"error": {"message": message, "type": "test", "code": None}})


def _last_user(request: dict[str, Any]) -> str:
    return str(next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user"))


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "double",
        "choices": [choice],
    }


def _completion(request: dict[str, Any]) -> dict[str, Any]:
    text = _last_user(request)
    logprobs = None
    if request.get("logprobs"):
        top = [{"token": text, "logprob": -0.2, "bytes": None}]
        top += [{"token": " neutral", "logprob": -2.0, "bytes": None}]
        top += [{"token": "Sure", "logprob": -3.0, "bytes": None}]
        logprobs = {
            "content": [{"token": text, "logprob": -0.2, "bytes": None, "top_logprobs": top}],
            "refusal": None,
        }
    return {
        "id": "chatcmpl-double",
        "object": "chat.completion",
        "created": 0,
        "model": request["model"],
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
    }


class FlakyUpstreamDouble:
    """A real HTTP server on 127.0.0.1 (a thread) that plays an OpenAI-compatible upstream:
    chat completions follow ``script`` in order, then ``then`` forever; ``GET /models`` answers
    ``models_status``. It records every request body and the most requests it held at once."""

    def __init__(
        self,
        script: Sequence[Reply] = (),
        *,
        then: Reply | None = None,
        models_status: int = 200,
        refuse_logprobs: bool = False,
        delay_s: float = 0.0,
    ) -> None:
        self.script = list(script)
        self.then = then or Reply()
        self.models_status = models_status
        self.refuse_logprobs = refuse_logprobs
        self.delay_s = delay_s
        self.received: list[dict[str, Any]] = []
        self.streams_cut = 0  # streams the client closed before their end
        self.in_flight = 0
        self.max_in_flight = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> FlakyUpstreamDouble:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, request: dict[str, Any]) -> Reply:
        with self._lock:
            self.received.append(request)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            reply = self.script.pop(0) if self.script else self.then
        if self.refuse_logprobs and request.get("logprobs"):
            reply = _error(400, "logprobs are not supported for this model")
        time.sleep(self.delay_s)
        with self._lock:
            self.in_flight -= 1
        return reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest's output for the tests

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str]) -> None:
                blob = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(blob)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(blob)

            def do_GET(self) -> None:
                body = {"object": "list", "data": [{"id": "double", "object": "model"}]}
                self._send(double.models_status, body, {})

            def _stream(self, request: dict[str, Any], reply: Reply) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                words = _last_user(request).split(" ")
                events: list[dict[str, Any] | str] = [_chunk({"role": "assistant", "content": ""})]
                events += [_chunk({"content": (" " if i else "") + w}) for i, w in enumerate(words)]
                if reply.error_after is not None:
                    error = {"message": "scripted failure mid-stream", "type": "server_error"}
                    events[reply.error_after + 1 :] = [{"error": error}]
                else:
                    events.append(_chunk({}, "stop"))
                    if (request.get("stream_options") or {}).get("include_usage"):
                        usage = {"prompt_tokens": 11, "completion_tokens": len(words)}
                        usage["total_tokens"] = 11 + len(words)
                        events.append(_chunk({}) | {"choices": [], "usage": usage})
                    events.append("[DONE]")
                try:
                    for event in events:
                        data = event if isinstance(event, str) else json.dumps(event)
                        self.wfile.write(f"data: {data}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(reply.chunk_delay_s)
                except (BrokenPipeError, ConnectionResetError):
                    with double._lock:
                        double.streams_cut += 1

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                request = json.loads(self.rfile.read(length))
                reply = double._next_reply(request)
                if request.get("stream") and reply.status == 200 and reply.body is None:
                    self._stream(request, reply)
                    return
                body = reply.body if reply.body is not None else _completion(request)
                if reply.status >= 400 and reply.body is None:
                    body = {"error": {"message": f"scripted {reply.status}", "type": "test"}}
                self._send(reply.status, body, reply.headers)

        return Handler


def one_request(text: str = "positive") -> ClassifyRequest:
    return ClassifyRequest(text=text, labels=LABELS, messages=(ChatMessage("user", text),))


def test_retries_429_then_503_then_succeeds() -> None:
    script = [Reply(429, {"Retry-After": "0.3"}), Reply(503)]
    with FlakyUpstreamDouble(script) as upstream:
        model = make(
            "openai:double",
            base_url=upstream.base_url,
            retry_base_delay_s=0.01,
            retry_max_delay_s=1,
        )
        model.load()
        started = time.perf_counter()
        [prediction] = run_sync(model.classify([one_request("positive")]))
        elapsed = time.perf_counter() - started
    assert len(upstream.received) == 3
    assert elapsed >= 0.3  # Retry-After is honoured over the (shorter) backoff
    assert prediction.label == "positive"
    assert prediction.tokens_in == 11 and prediction.tokens_out == 1
    # e^-0.2 on "positive", e^-2 on " neutral", nothing on "Sure"; normalised over the labels
    assert prediction.scores["negative"] == 0.0
    assert prediction.scores["positive"] == pytest.approx(0.858, abs=1e-3)
    assert prediction.confidence == prediction.scores["positive"]


def test_always_500_ends_in_model_api_error_after_max_retries() -> None:
    with FlakyUpstreamDouble(then=Reply(500)) as upstream:
        model = make("openai:double", base_url=upstream.base_url, max_retries=2, **FAST_RETRIES)
        model.load()
        with pytest.raises(ModelAPIError) as info:
            run_sync(model.classify([one_request()]))
    assert len(upstream.received) == 3  # one try and two retries
    assert info.value.status_code == 500
    assert upstream.base_url in str(info.value)
    assert "3 times in a row" in str(info.value)


def test_other_4xx_fails_at_once_and_401_is_a_configuration_error() -> None:
    with FlakyUpstreamDouble(then=_error(404, "The model `nope` does not exist")) as upstream:
        model = make("openai:nope", base_url=upstream.base_url, logprobs=False, **FAST_RETRIES)
        model.load()
        with pytest.raises(ModelAPIError, match="does not exist") as info:
            run_sync(model.classify([one_request()]))
        assert info.value.status_code == 404
        assert len(upstream.received) == 1
    with FlakyUpstreamDouble(then=_error(401, "Incorrect API key provided")) as upstream:
        model = make("openai:double", base_url=upstream.base_url, api_key="sk-wrong")
        model.load()
        with pytest.raises(ConfigurationError, match="refused the API key"):
            run_sync(model.classify([one_request()]))
        assert len(upstream.received) == 1


def test_refused_logprobs_are_dropped_once_and_remembered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FlakyUpstreamDouble(refuse_logprobs=True) as upstream:
        model = make("openai:double", base_url=upstream.base_url, **FAST_RETRIES)
        model.load()
        with caplog.at_level(logging.WARNING, logger="rung.models.openai"):
            first = run_sync(model.classify([one_request("neutral")]))
            second = run_sync(model.classify([one_request("negative")]))
    asked = [bool(r.get("logprobs")) for r in upstream.received]
    assert asked == [True, False, False]
    assert [p.label for p in first + second] == ["neutral", "negative"]
    assert all(p.scores == {} and p.confidence is None for p in first + second)
    assert "logprobs are not supported" in caplog.text


def test_batch_keeps_order_and_concurrency_bound() -> None:
    texts = ["positive", "negative", "neutral", "maybe"] * 3
    with FlakyUpstreamDouble(delay_s=0.1) as upstream:
        model = make("openai:double", base_url=upstream.base_url, concurrency=3)
        assert model.max_concurrency == 3
        model.load()
        started = time.perf_counter()
        predictions = run_sync(model.classify([one_request(t) for t in texts]))
        elapsed = time.perf_counter() - started
    assert [p.label for p in predictions] == ["positive", "negative", "neutral", None] * 3
    assert upstream.max_in_flight == 3
    assert elapsed < 12 * 0.1  # concurrent, not one after the other


def test_connection_refused_during_classify_is_model_api_error() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    model = make("openai:x", base_url=base_url, max_retries=1, **FAST_RETRIES)
    model.load()
    with pytest.raises(ModelAPIError, match="cannot reach") as info:
        run_sync(model.classify([one_request()]))
    assert base_url in str(info.value)
    assert "2 tries" in str(info.value)


def test_slow_answer_times_out_into_model_api_error() -> None:
    with FlakyUpstreamDouble(delay_s=1.0) as upstream:
        model = make("openai:double", base_url=upstream.base_url, timeout_s=0.2, max_retries=0)
        model.load()
        with pytest.raises(ModelAPIError, match=r"no answer within 0.2 s \(options.timeout_s\)"):
            run_sync(model.classify([one_request()]))


def test_generate_retries_and_maps_errors_as_classify_does() -> None:
    """generate() posts plain HTTP, past the SDK: the same retries and the same errors."""
    request = GenerateRequest(messages=(ChatMessage("user", "one two"),), stop=("\n",))
    with FlakyUpstreamDouble([Reply(429, {"Retry-After": "0"}), Reply(503)]) as upstream:
        model = make("openai:double", base_url=upstream.base_url, **FAST_RETRIES)
        model.load()
        generation = run_sync(model.generate(request))
    assert (generation.text, generation.tokens_in, generation.tokens_out) == ("one two", 11, 1)
    assert generation.finish_reason == "stop"
    assert len(upstream.received) == 3
    assert upstream.received[-1] == {
        "model": "double",
        "messages": [{"role": "user", "content": "one two"}],
        "temperature": 0.0,
        "max_tokens": 128,
        "stop": ["\n"],
    }
    with FlakyUpstreamDouble(then=_error(404, "The model `nope` does not exist")) as upstream:
        model = make("openai:nope", base_url=upstream.base_url, **FAST_RETRIES)
        model.load()
        with pytest.raises(ModelAPIError, match=r"HTTP 404: .*does not exist") as info:
            run_sync(model.generate(request))
        assert info.value.status_code == 404 and len(upstream.received) == 1
    with FlakyUpstreamDouble(then=_error(401, "Incorrect API key provided")) as upstream:
        model = make("openai:double", base_url=upstream.base_url, api_key="sk-wrong")
        model.load()
        with pytest.raises(ConfigurationError, match="refused the API key"):
            run_sync(model.generate(request))
        assert upstream.received  # the key went along
    with FlakyUpstreamDouble(then=Reply(body={"no": "choices"})) as upstream:
        model = make("openai:double", base_url=upstream.base_url)
        model.load()
        with pytest.raises(ModelAPIError, match="answered with no choices"):
            run_sync(model.generate(request))
    with FlakyUpstreamDouble(delay_s=1.0) as upstream:
        model = make("openai:double", base_url=upstream.base_url, timeout_s=0.2, max_retries=0)
        model.load()
        with pytest.raises(ModelAPIError, match=r"no answer within 0.2 s \(options.timeout_s\)"):
            run_sync(model.generate(request))
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    model = make("openai:x", base_url=base_url, max_retries=1, **FAST_RETRIES)
    model.load()
    with pytest.raises(ModelAPIError, match=rf"cannot reach {re.escape(base_url)}: .*2 tries"):
        run_sync(model.generate(request))


def _streamed(model: OpenAIModel, text: str) -> list[GenerationDelta]:
    request = GenerateRequest(messages=(ChatMessage("user", text),), max_tokens=50)

    async def collect() -> list[GenerationDelta]:
        return [d async for d in model.stream(request)]

    return run_sync(collect())


def test_stream_counts_from_the_usage_chunk_and_retries_before_the_first_byte() -> None:
    with FlakyUpstreamDouble([Reply(503)]) as upstream:
        model = make("openai:double", base_url=upstream.base_url, **FAST_RETRIES)
        model.load()
        *texts, last = _streamed(model, "one two three")
    assert [d.text for d in texts] == ["one", " two", " three"]
    assert (last.text, last.finish_reason, last.tokens_in, last.tokens_out) == ("", "stop", 11, 3)
    assert len(upstream.received) == 2  # the 503, then the stream
    assert upstream.received[1]["stream"] is True
    assert upstream.received[1]["stream_options"] == {"include_usage": True}


def test_stream_error_event_mid_answer_is_a_model_api_error() -> None:
    with FlakyUpstreamDouble(then=Reply(error_after=2)) as upstream:
        model = make("openai:double", base_url=upstream.base_url, **FAST_RETRIES)
        model.load()
        seen: list[str] = []

        async def consume() -> None:
            async for delta in model.stream(
                GenerateRequest(messages=(ChatMessage("user", "one two three four"),))
            ):
                seen.append(delta.text)

        with pytest.raises(ModelAPIError, match="failed mid-answer: scripted failure"):
            run_sync(consume())
    assert seen == ["one", " two"]
    assert len(upstream.received) == 1  # nothing is retried once the answer has begun


def test_stream_refused_stream_options_are_dropped_and_remembered() -> None:
    refused = _error(400, "Unrecognized request argument supplied: stream_options")
    with FlakyUpstreamDouble([refused]) as upstream:
        model = make("openai:double", base_url=upstream.base_url, **FAST_RETRIES)
        model.load()
        *texts, last = _streamed(model, "one two")
        _streamed(model, "three")
    assert [bool(r.get("stream_options")) for r in upstream.received] == [True, False, False]
    assert [d.text for d in texts] == ["one", " two"]
    assert (last.tokens_in, last.tokens_out) == (0, 2)  # no usage chunk: a token per chunk


def test_stream_closed_early_closes_the_upstream_response() -> None:
    words = " ".join(f"w{i}" for i in range(200))
    with FlakyUpstreamDouble(then=Reply(chunk_delay_s=0.02)) as upstream:
        model = make("openai:double", base_url=upstream.base_url)
        model.load()

        async def leave_after_two() -> list[str]:
            deltas = model.stream(GenerateRequest(messages=(ChatMessage("user", words),)))
            seen = [(await anext(deltas)).text, (await anext(deltas)).text]
            await deltas.aclose()  # type: ignore[attr-defined]
            return seen

        started = time.perf_counter()
        assert run_sync(leave_after_two()) == ["w0", " w1"]
        deadline = time.monotonic() + 3
        while not upstream.streams_cut and time.monotonic() < deadline:
            time.sleep(0.02)
        assert upstream.streams_cut == 1
        assert time.perf_counter() - started < 3  # 200 chunks would take 4 s


# --- check() and configuration -------------------------------------------------------------------


def test_check_without_api_key_for_openai() -> None:
    model = make("openai:gpt-4o-mini")
    assert model.base_url == DEFAULT_BASE_URL
    with pytest.raises(ConfigurationError) as info:
        model.check()
    assert str(info.value) == (
        "no API key for openai:gpt-4o-mini: set OPENAI_API_KEY or options.api_key"
    )


def test_check_names_the_unreachable_url() -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(ModelAPIError) as info:
        make("openai:smollm2", base_url=base_url).check()
    message = str(info.value)
    assert message.startswith(f"cannot reach {base_url}: ")
    assert "RUNG_OPENAI_BASE_URL" in message


def test_check_on_refused_key_and_wrong_root() -> None:
    with (
        FlakyUpstreamDouble(models_status=401) as upstream,
        pytest.raises(ConfigurationError, match="refused the API key"),
    ):
        make("openai:double", base_url=upstream.base_url, api_key="sk-bad").check()
    with FlakyUpstreamDouble(models_status=404) as upstream:
        root = upstream.base_url.removesuffix("/v1")
        with pytest.raises(ModelAPIError, match=f"try options.base_url {root}/v1") as info:
            make("openai:double", base_url=root).check()
        assert info.value.status_code == 404
        assert not upstream.received  # check is one GET, no completion


def test_environment_and_key_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://other:1/v1")
    assert make("openai:m").base_url == "http://other:1/v1"
    monkeypatch.setenv("RUNG_OPENAI_BASE_URL", "http://local:8000/v1/")
    local = make("openai:m")
    assert local.base_url == "http://local:8000/v1"
    assert local._api_key == "not-needed"  # a local server needs no key
    assert make("openai:m", base_url="http://x/v1").base_url == "http://x/v1"

    monkeypatch.setenv("MY_GATEWAY_KEY", "sk-gateway")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert make("openai:m", api_key_env="MY_GATEWAY_KEY")._api_key == "sk-gateway"
    assert make("openai:m")._api_key == "sk-openai"
    assert make("openai:m", api_key="sk-explicit")._api_key == "sk-explicit"

    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("RUNG_OPENAI_BASE_URL")
    monkeypatch.delenv("OPENAI_BASE_URL")
    with pytest.raises(ConfigurationError, match=r"set \$MY_KEY or options.api_key"):
        make("openai:gpt-4o", api_key_env="MY_KEY").check()


def test_module_import_leaves_the_sdk_unimported() -> None:
    code = "import sys, rung.models.openai; print('openai' in sys.modules, 'httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_options_are_validated() -> None:
    with pytest.raises(SpecError, match="api_keys"):
        registry.create("openai:gpt-4o-mini", {"api_keys": "x"})
    with pytest.raises(SpecError, match="top_logprobs"):
        registry.create("openai:gpt-4o-mini", {"top_logprobs": 50})


def test_fingerprint_info_and_bundled() -> None:
    a = make("openai:m", base_url="http://a/v1", api_key="sk-1")
    assert a.fingerprint() == make("openai:m", base_url="http://a/v1", api_key="sk-2").fingerprint()
    assert a.fingerprint() == make("openai:m", base_url="http://a/v1", concurrency=2).fingerprint()
    assert a.fingerprint() != make("openai:m", base_url="http://b/v1").fingerprint()
    assert a.fingerprint() != make("openai:m", base_url="http://a/v1", max_tokens=4).fingerprint()
    assert "sk-1" not in repr(a.info())
    assert a.info().extra == {"base_url": "http://a/v1"}
    assert a.info().params is None
    [entry] = OpenAIModel.bundled()
    assert entry.model_id == "openai:<any model>"
    assert entry.installed
    assert "OPENAI_API_KEY" in entry.description


# --- pure functions ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("positive", "positive"),
        ("  Positive.\n", "positive"),
        ('"neutral"', "neutral"),
        ("**Negative**", "negative"),
        ("NEUTRAL!", "neutral"),
        ("The sentiment is positive.", "positive"),
        ("Label: negative", "negative"),
        ("It is not negative, it is positive", None),  # two labels: no guess
        ("positively good", None),  # not a whole word
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_parse_label(text: str, expected: str | None) -> None:
    assert parse_label(text, LABELS) == expected


def test_parse_label_prefers_the_longer_label_it_contains() -> None:
    labels = ("positive", "very positive", "negative")
    assert parse_label("very positive", labels) == "very positive"
    assert parse_label("I'd say very positive.", labels) == "very positive"
    assert parse_label("card_arrival", ("card_arrival", "card_linking")) == "card_arrival"


def test_label_scores_sum_first_token_mass_per_label() -> None:
    top = [
        TopToken("Pos", -0.5),  # a prefix of positive
        TopToken(" positive", -1.0),  # leading space
        TopToken("Negative", -2.0),
        TopToken("The", -1.5),  # no label
        TopToken("ne", -3.0),  # could begin negative or neutral: split
    ]
    scores = label_scores(top, LABELS)
    import math

    pos = math.exp(-0.5) + math.exp(-1.0)
    neg = math.exp(-2.0) + math.exp(-3.0) / 2
    neu = math.exp(-3.0) / 2
    total = pos + neg + neu
    assert scores == pytest.approx(
        {"positive": pos / total, "negative": neg / total, "neutral": neu / total}
    )
    assert sum(scores.values()) == pytest.approx(1.0)


def test_label_scores_exact_token_beats_prefix_and_empty_without_mass() -> None:
    labels = ("pos", "positive")
    assert label_scores([TopToken("pos", 0.0)], labels) == {"pos": 1.0, "positive": 0.0}
    assert label_scores([TopToken("The", -0.1), TopToken("\n", -1.0)], LABELS) == {}
    assert label_scores([], LABELS) == {}
    assert label_scores([TopToken("▁Neutral", -0.1)], LABELS)["neutral"] == 1.0


def test_first_content_index_skips_quotes_and_space() -> None:
    assert first_content_index(['"', "positive", '"']) == 1
    assert first_content_index([" ", "**", "Neg"]) == 2
    assert first_content_index(["positive"]) == 0
    assert first_content_index(["  ", '"']) is None


def test_retry_after_forms() -> None:
    assert retry_after_s({"Retry-After": "3"}) == 3.0
    assert retry_after_s({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert retry_after_s({"Retry-After": "Wed, 21 Oct 2015 07:28:10 GMT"}, now=1445412480.0) == 10
    assert retry_after_s({"Retry-After": "soon"}) is None
    assert retry_after_s({}) is None
