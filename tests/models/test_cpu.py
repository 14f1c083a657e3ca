"""CPU flags from /proc/cpuinfo-style files, and the weight-repacking decision they drive."""

from __future__ import annotations

from pathlib import Path

import pytest

from rung.models.cpu import CPUINFO_ENV, cpu_flags, has_amx
from rung.models.llamacpp import use_extra_buffers

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cpuinfo"
XEON_AMX = FIXTURES / "xeon-sapphire-rapids.txt"
EPYC = FIXTURES / "epyc-no-amx.txt"
ARM = FIXTURES / "arm-neoverse.txt"


def test_flags_of_an_x86_and_an_arm_cpu() -> None:
    xeon = cpu_flags(XEON_AMX)
    assert {"avx512f", "amx_tile", "amx_int8", "amx_bf16"} <= xeon
    assert "avx2" in cpu_flags(EPYC) and not has_amx(cpu_flags(EPYC))
    assert {"asimd", "sve2"} <= cpu_flags(ARM)
    assert has_amx(xeon)
    assert not has_amx(cpu_flags(ARM))


def test_the_environment_points_the_reader_at_another_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(CPUINFO_ENV, str(XEON_AMX))
    assert has_amx()
    monkeypatch.setenv(CPUINFO_ENV, str(EPYC))
    assert not has_amx()


def test_an_unreadable_file_means_no_flags(tmp_path: Path) -> None:
    assert cpu_flags(tmp_path / "missing") == frozenset()
    (tmp_path / "empty").write_text("processor : 0\n", encoding="utf-8")
    assert cpu_flags(tmp_path / "empty") == frozenset()


@pytest.mark.parametrize(
    ("setting", "cpu", "expected"),
    [
        ("auto", XEON_AMX, False),  # AMX repacking crashes llama.cpp: off
        ("auto", EPYC, True),  # AVX-512 repacking is kept
        ("auto", ARM, True),
        ("on", XEON_AMX, True),  # the user's word wins
        ("off", EPYC, False),
    ],
)
def test_extra_buffers_follow_the_setting_and_the_cpu(
    setting: str, cpu: Path, expected: bool
) -> None:
    assert use_extra_buffers(setting, cpu_flags(cpu)) is expected  # type: ignore[arg-type]
