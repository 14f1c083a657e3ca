"""``rung compare`` end to end: spec in, run folder out."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.compare.results import check_out_dir, run_files, summarize, write_run
from rung.compare.runner import Progress, RungRun, prepare, run_rungs
from rung.compare.spec import CompareSpec, load_spec
from rung.report.markdown import find_disagreements, render_markdown

__all__ = ["CompareResult", "compare_spec", "compare_spec_file"]


@dataclass
class CompareResult:
    out: Path
    results: dict[str, Any]
    runs: list[RungRun]


def compare_spec(
    spec: CompareSpec,
    base_dir: Path,
    out: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> CompareResult:
    """Run every rung of ``spec`` (data paths relative to ``base_dir``) and write ``out``."""
    check_out_dir(out)
    prepared = prepare(spec, base_dir)
    runs = run_rungs(prepared, use_cache=use_cache, progress=progress)
    results = summarize(prepared, runs, base_dir)
    labels = [r.ref.display for r in runs]
    records = [[(x.id, x.text, x.gold, x.prediction.label) for x in r.records] for r in runs]
    report = render_markdown(results, find_disagreements(labels, records))
    write_run(out, run_files(prepared, runs, base_dir, report, results))
    return CompareResult(out=out.resolve(), results=results, runs=runs)


def compare_spec_file(
    path: Path, out: Path, *, use_cache: bool = True, progress: Progress | None = None
) -> CompareResult:
    spec = load_spec(path)
    return compare_spec(spec, path.resolve().parent, out, use_cache=use_cache, progress=progress)
