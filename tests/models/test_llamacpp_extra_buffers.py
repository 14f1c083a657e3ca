"""Weight repacking reaches llama.cpp as decided: off on a CPU that reports AMX (where
llama.cpp's AMX buffers crash the process), on elsewhere. The CPU is a fixture file
(``$RUNG_CPUINFO``), so the AMX case is checked on any machine; llama.cpp's own log tells which
buffer types it filled."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from rung.models import registry
from rung.models.base import ChatMessage, GenerateRequest, run_sync
from rung.models.cpu import CPUINFO_ENV, PROC_CPUINFO, cpu_flags, has_amx
from rung.models.llamacpp import LlamaCppModel, extra_buffers_patch, open_llama

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cpuinfo"
XEON_AMX = FIXTURES / "xeon-sapphire-rapids.txt"
EPYC = FIXTURES / "epyc-no-amx.txt"
REAL_AMX = has_amx(cpu_flags(PROC_CPUINFO))


def _gemma(**options: object) -> LlamaCppModel:
    model = registry.create("llamacpp:gemma-3-270m", {"n_ctx": 256, "n_threads": 1, **options})
    assert isinstance(model, LlamaCppModel)
    model.check()
    model.load()
    return model


def _generate(model: LlamaCppModel) -> str:
    messages = (ChatMessage("user", "The capital of France is"),)
    return run_sync(model.generate(GenerateRequest(messages, max_tokens=4))).text


def test_auto_turns_repacking_off_when_the_cpu_has_amx(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="rung.models.llamacpp")
    monkeypatch.setenv(CPUINFO_ENV, str(XEON_AMX))
    model = _gemma()  # extra_buffers: auto, the default
    try:
        assert model._llm is not None
        assert model._llm.model_params.use_extra_bufts is False
        assert model.info().extra["extra_buffers"] is False
        buffers = [r.getMessage() for r in caplog.records if "model buffer" in r.getMessage()]
        assert buffers, "llama.cpp logged no model buffer: the check below would prove nothing"
        assert not [b for b in buffers if "REPACK" in b or "AMX" in b], buffers
        assert _generate(model)
    finally:
        model.close()


@pytest.mark.skipif(REAL_AMX, reason="this CPU has AMX: repacking on would crash llama.cpp")
def test_auto_keeps_repacking_on_a_cpu_without_amx(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    if "avx2" not in cpu_flags(PROC_CPUINFO):
        pytest.skip("llama.cpp repacks Q4_K weights only with AVX2 or better")
    caplog.set_level(logging.DEBUG, logger="rung.models.llamacpp")
    monkeypatch.setenv(CPUINFO_ENV, str(EPYC))
    model = _gemma()
    try:
        assert model._llm is not None
        assert model._llm.model_params.use_extra_bufts is True
        buffers = [r.getMessage() for r in caplog.records if "model buffer" in r.getMessage()]
        assert any("CPU_REPACK" in b for b in buffers), buffers
        assert _generate(model)
    finally:
        model.close()


def test_off_is_off_whatever_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPUINFO_ENV, str(EPYC))
    model = _gemma(extra_buffers="off")
    try:
        assert model._llm is not None
        assert model._llm.model_params.use_extra_bufts is False
    finally:
        model.close()


def test_open_llama_and_the_patch_leave_other_models_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    """open_llama (what the benchmarks and tests build their Llama with) decides the same way,
    and llama-cpp-python's defaults are untouched once it returns."""
    import llama_cpp.llama_cpp as lib

    from rung.models.bundled import smollm2_135m_gguf

    monkeypatch.setenv(CPUINFO_ENV, str(XEON_AMX))
    original = lib.llama_model_default_params
    llm = open_llama(smollm2_135m_gguf(), n_ctx=256, n_threads=1, verbose=False)
    try:
        assert llm.model_params.use_extra_bufts is False
    finally:
        llm.close()
    assert lib.llama_model_default_params is original
    assert lib.llama_model_default_params().use_extra_bufts is True
    with extra_buffers_patch(False):
        assert lib.llama_model_default_params().use_extra_bufts is False
    assert lib.llama_model_default_params is original
