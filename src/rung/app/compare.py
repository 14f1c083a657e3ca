"""``rung compare`` end to end: spec in, run folder out. Compare measures the rungs, advise
gives the default advice and report draws the pages; this is the one place that ties them.

A spec's ``task.type`` picks the runner: ``classify`` (``rung.compare.runner``, with its
calibration, baselines and confusion matrices) or any other registered task type
(``rung.compare.tasks``: extract, summarize, translate, generate, chat, answer, plugins').
Both write the same run record, reports and advice."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from rung.advise.advice import Constraints
from rung.advise.run import advice_for_results
from rung.compare.results import prediction_rows, summarize
from rung.compare.runner import RungRun, prepare, run_rungs
from rung.compare.tasks import TaskSpec, is_task_spec, load_task_spec, run_task
from rung.errors import RunError
from rung.report.html import render_html
from rung.report.markdown import find_disagreements, render_markdown
from rung.report.tasks import task_markdown
from rung.responses import Progress
from rung.runs import CompareSpec, RunFolder, RunResults, parse_spec
from rung.runs.items import items_sha256
from rung.runs.spec import read_spec_data, spec_as_run

__all__ = ["AnySpec", "CompareResult", "compare_spec", "compare_spec_file", "load_any_spec"]

#: a compare spec of any task type
AnySpec = CompareSpec | TaskSpec


@dataclass
class CompareResult:
    out: Path
    results: RunResults
    #: classify's per-rung runs (answers, calibration); empty for other task types
    runs: list[RungRun] = field(default_factory=list)


def load_any_spec(path: Path) -> AnySpec:
    """The spec at ``path``, as its task type's model."""
    data = read_spec_data(path)
    if is_task_spec(data):
        return load_task_spec(data, str(path))
    return parse_spec(data, str(path))


def compare_spec(
    spec: AnySpec,
    base_dir: Path,
    out: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> CompareResult:
    """Run every rung of ``spec`` (data paths relative to ``base_dir``) and write ``out``."""
    if isinstance(spec, TaskSpec):
        return _compare_task(spec, base_dir, out, use_cache=use_cache, progress=progress)
    folder = RunFolder(out)
    folder.check_writable()
    prepared = prepare(spec, base_dir)
    outcome = run_rungs(prepared, use_cache=use_cache, progress=progress)
    runs = outcome.runs
    if not runs:
        reasons = "; ".join(f.error for f in outcome.failures)
        raise RunError(f"no rung could be measured, so no run was written: {reasons}")
    results = summarize(prepared, runs, base_dir, outcome.failures)
    # The items' identity goes with the run, so that `rung check` can refuse a baseline that
    # answered other items.
    items = items_sha256((x.id, x.text, x.label) for x in prepared.data.test)
    results = results.model_copy(
        update={"task": results.task.model_copy(update={"items_sha256": items})}
    )
    predictions = prediction_rows(runs)
    labels = [r.ref.display for r in runs]
    records = [[(x.id, x.text, x.gold, x.prediction.label) for x in r.records] for r in runs]
    report = render_markdown(results, find_disagreements(labels, records))
    # The report shows the advice with no constraints (the smallest rung tied with the best);
    # `rung advise RUN_DIR --min-accuracy ...` answers with the user's own.
    advice = advice_for_results(results, Constraints(), spec.base_urls()).to_json()
    folder.write(
        results,
        predictions,
        spec_as_run(spec, base_dir),
        {"report.md": report, "report.html": render_html(results, predictions, advice)},
    )
    return CompareResult(out=out.resolve(), results=results, runs=runs)


def _compare_task(
    spec: TaskSpec,
    base_dir: Path,
    out: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> CompareResult:
    folder = RunFolder(out)
    folder.check_writable()
    run = run_task(spec, base_dir, use_cache=use_cache, progress=progress)
    # As for classify: the advice with no constraints (the smallest rung tied with the best on
    # the task's primary metric); `rung advise RUN_DIR --min-quality ...` answers with the
    # user's own.
    advice = advice_for_results(run.results, Constraints(), spec.base_urls()).to_json()
    folder.write(
        run.results,
        run.rows,
        spec.as_run(base_dir),
        {
            "report.md": task_markdown(run.results),
            "report.html": render_html(run.results, run.rows, advice),
        },
    )
    return CompareResult(out=out.resolve(), results=run.results)


def compare_spec_file(
    path: Path, out: Path, *, use_cache: bool = True, progress: Progress | None = None
) -> CompareResult:
    spec = load_any_spec(path)
    return compare_spec(spec, path.resolve().parent, out, use_cache=use_cache, progress=progress)
