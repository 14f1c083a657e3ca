"""``rung check`` end to end: the spec is run again through compare (the response cache answers
what did not change) and the new run is gated against a baseline run folder."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from rung.app.compare import AnySpec, CompareResult, compare_spec
from rung.check import CheckReport, RunData, gate, rungs_to_gate
from rung.compare.tasks import test_items_sha256
from rung.errors import DataError, RunError
from rung.responses import Progress
from rung.runs import CompareSpec, RunFolder
from rung.runs.items import items_sha256, items_sha256_of_rows
from rung.tasks.classify import load_task_data

__all__ = ["CheckResult", "baseline_at_ref", "baseline_items", "check_spec"]


@dataclass
class CheckResult:
    report: CheckReport
    compare: CompareResult


def _git(args: list[str], cwd: Path) -> bytes:
    try:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False)
    except FileNotFoundError:
        raise DataError(
            "--against needs git, which is not installed; give --baseline alone"
        ) from None
    if done.returncode != 0:
        first = (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[0]
        raise DataError(f"git {' '.join(args)}: {first}")
    return done.stdout


def baseline_at_ref(ref: str, path: Path, dest: Path) -> Path:
    """The run folder ``path`` as the git commit ``ref`` holds it (a baseline committed on the
    main branch, say), written into ``dest``; the working tree is not touched."""
    start = path.resolve()
    while not start.is_dir():
        start = start.parent
    top = Path(_git(["rev-parse", "--show-toplevel"], start).decode().strip()).resolve()
    try:
        rel = path.resolve().relative_to(top).as_posix()
    except ValueError:
        raise DataError(f"--baseline {path} is outside the git repository {top}") from None
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("results.json", "predictions.jsonl"):
        try:
            text = _git(["show", f"{ref}:{rel}/{name}"], top)
        except DataError as e:
            raise DataError(
                f"{ref} holds no run folder at {rel} ({e}); commit the baseline run there "
                "or give --baseline without --against"
            ) from None
        (dest / name).write_bytes(text)
    return dest


def _read(folder: RunFolder) -> RunData:
    return RunData(results=folder.results(), predictions=folder.predictions())


def baseline_items(run: RunData) -> str:
    """The baseline's items hash: from results.json, or from its predictions when the run was
    written before results.json held it."""
    return run.results.task.items_sha256 or items_sha256_of_rows(run.predictions)


def _refuse_other_items(spec_items: str, base_items: str, baseline: Path) -> None:
    if spec_items != base_items:
        raise DataError(
            f"the spec's test items differ from those of the baseline run {baseline} "
            f"(sha256 {spec_items[:12]} vs {base_items[:12]}): a paired check needs the same "
            "items; keep the data, test_size and seed of the baseline, or run a new baseline"
        )


def _spec_items(spec: AnySpec, base_dir: Path) -> str:
    """The items hash of the spec's test split, told before any rung is asked: the split is
    drawn from the data alone."""
    if isinstance(spec, CompareSpec):
        test = load_task_data(spec.task, base_dir).test
        return items_sha256((x.id, x.text, x.label) for x in test)
    _, items = spec.kind.load_items(spec.task_spec(), base_dir)
    return test_items_sha256(items)


def _task_type(spec: AnySpec) -> str:
    return spec.task.type if isinstance(spec, CompareSpec) else spec.kind.task_type


def check_spec(
    spec: AnySpec,
    base_dir: Path,
    baseline: Path,
    out: Path,
    *,
    use_cache: bool = True,
    progress: Progress | None = None,
) -> CheckResult:
    """Run ``spec`` into ``out`` and gate it against the run folder ``baseline``."""
    base_folder = RunFolder.at(baseline)
    if out.resolve() == base_folder.path.resolve():
        raise RunError(f"--out {out} is the baseline run; choose another folder for the new run")
    base = _read(base_folder)
    if _task_type(spec) != base.results.task.type:
        raise DataError(
            f"the baseline {baseline} is a {base.results.task.type} run and the spec a "
            f"{_task_type(spec)} one; give a baseline of the same task"
        )
    rungs_to_gate(spec.check, base.results)
    base_items = baseline_items(base)
    # Refused before any rung is asked.
    _refuse_other_items(_spec_items(spec, base_dir), base_items, baseline)
    result = compare_spec(spec, base_dir, out, use_cache=use_cache, progress=progress)
    candidate = _read(RunFolder(result.out))
    cand_items = candidate.results.task.items_sha256 or items_sha256_of_rows(candidate.predictions)
    _refuse_other_items(cand_items, base_items, baseline)
    return CheckResult(report=gate(base, candidate, spec.check, base_items), compare=result)
