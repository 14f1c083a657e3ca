"""``rung compare`` end to end: spec in, run folder out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.advise.advice import Constraints
from rung.advise.run import advice_for_results
from rung.compare.results import check_out_dir, run_files, summarize, write_run
from rung.compare.runner import Progress, RungRun, prepare, run_rungs
from rung.compare.spec import CompareSpec, load_spec
from rung.errors import RunError
from rung.report.html import render_html
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
    outcome = run_rungs(prepared, use_cache=use_cache, progress=progress)
    runs = outcome.runs
    if not runs:
        reasons = "; ".join(f.error for f in outcome.failures)
        raise RunError(f"no rung could be measured, so no run was written: {reasons}")
    results = summarize(prepared, runs, base_dir, outcome.failures)
    labels = [r.ref.display for r in runs]
    records = [[(x.id, x.text, x.gold, x.prediction.label) for x in r.records] for r in runs]
    report = render_markdown(results, find_disagreements(labels, records))
    files = run_files(prepared, runs, base_dir, report, results)
    rows = [json.loads(line) for line in files["predictions.jsonl"].splitlines()]
    # The report shows the advice with no constraints (the smallest rung tied with the best);
    # `rung advise RUN_DIR --min-accuracy ...` answers with the user's own.
    base_urls = {
        r.ref.display: str(r.ref.options["base_url"]) for r in runs if "base_url" in r.ref.options
    }
    advice = advice_for_results(results, Constraints(), base_urls).to_json()
    files["report.html"] = render_html(results, rows, advice)
    write_run(out, files)
    return CompareResult(out=out.resolve(), results=results, runs=runs)


def compare_spec_file(
    path: Path, out: Path, *, use_cache: bool = True, progress: Progress | None = None
) -> CompareResult:
    spec = load_spec(path)
    return compare_spec(spec, path.resolve().parent, out, use_cache=use_cache, progress=progress)
