"""A run folder on disk: the one place that reads and writes one.

A run folder holds ``spec.yaml`` (the spec as run, defaults filled in and data paths made
absolute), ``results.json`` (``RunResults``), ``predictions.jsonl`` (``PredictionRow`` lines)
and the reports. It is written into a hidden sibling folder and renamed into place at the end,
so a failure or an interrupt never leaves a half-written run behind. Reading it back gives
typed objects, or one line saying what is wrong with which file.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError

from rung.errors import DataError, RunError, RungError, validation_message
from rung.runs.record import PredictionRow, RunResults
from rung.runs.spec import CompareSpec, ModelRef, distinct_labels, parse_spec

__all__ = ["RunFolder"]

RESULTS = "results.json"
PREDICTIONS = "predictions.jsonl"
SPEC = "spec.yaml"
#: files whose presence marks a folder as a run rung wrote (and may replace)
RUN_MARKERS = (RESULTS, SPEC)


def _problems(e: ValidationError, shown: int = 3) -> str:
    """The first few problems of a validation error, in one line."""
    message = validation_message(e)
    parts = message.split("; ")
    if len(parts) > shown:
        return "; ".join(parts[:shown]) + f"; and {len(parts) - shown} more"
    return message


class RunFolder:
    """The run folder at ``path``."""

    def __init__(self, path: Path, results_file: Path | None = None) -> None:
        self.path = path
        self._results_file = results_file

    @classmethod
    def at(cls, path: Path) -> RunFolder:
        """The run folder of ``path``: a run folder, or a results file (the spec and the
        predictions are then the ones beside it)."""
        return cls(path.parent, path) if path.is_file() else cls(path)

    @property
    def results_path(self) -> Path:
        return self._results_file or self.path / RESULTS

    @property
    def predictions_path(self) -> Path:
        return self.path / PREDICTIONS

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC

    # -- reading ----------------------------------------------------------------------------

    def _require(self, path: Path) -> None:
        if not self.path.is_dir():
            raise DataError(
                f"run folder not found: {self.path}; give the folder `rung compare` wrote"
            )
        if not path.is_file():
            raise DataError(
                f"{self.path} holds no {path.name}: it is not a run folder of `rung compare`; "
                "run `rung compare SPEC --out FOLDER` and give that folder"
            )

    def _text(self, path: Path) -> str:
        self._require(path)
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise DataError(f"cannot read {path}: {e}; re-run `rung compare`") from None

    def results(self) -> RunResults:
        """results.json, checked against the record."""
        path = self.results_path
        try:
            data = json.loads(self._text(path))
        except ValueError as e:
            raise DataError(f"{path} is not valid JSON ({e}); re-run `rung compare`") from None
        if not isinstance(data, dict):
            raise DataError(f"{path} is not a rung results file; re-run `rung compare`")
        try:
            return RunResults.model_validate(data)
        except ValidationError as e:
            raise DataError(
                f"{path} is not a results file this rung reads ({_problems(e)}); "
                "re-run `rung compare` with this version of rung"
            ) from None

    def predictions(self) -> list[PredictionRow]:
        """predictions.jsonl, a row per line; blank lines are skipped."""
        path = self.predictions_path
        rows = []
        for number, line in enumerate(self._text(path).splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(PredictionRow.model_validate_json(line))
            except ValidationError as e:
                raise DataError(
                    f"{path}, line {number}: not a prediction line of a rung run "
                    f"({_problems(e)}); re-run `rung compare`"
                ) from None
        return rows

    def spec(self) -> CompareSpec | None:
        """The spec the run ran, or None when the folder has none or it cannot be read: the
        results alone are enough for every reader, which then lacks only the rungs' options
        (their base URLs, say)."""
        path = self.spec_path
        if not path.is_file():
            return None
        try:
            return parse_spec(yaml.safe_load(path.read_text(encoding="utf-8")), str(path))
        except (OSError, UnicodeDecodeError, yaml.YAMLError, RungError):
            return None

    def rung_options(self) -> dict[str, dict[str, object]]:
        """Each rung's backend options by its label, from the spec of any task type (empty when
        the folder has no readable spec)."""
        path = self.spec_path
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return {}
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            return {}
        try:
            refs = [
                ModelRef.model_validate({"id": m} if isinstance(m, str) else m)
                for m in data["models"]
            ]
            return {m.display: dict(m.options) for m in distinct_labels(refs)}
        except (ValidationError, ValueError):
            return {}

    # -- writing ----------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Refuse an output folder that holds something other than an earlier rung run."""
        out = self.path
        if out.exists() and not out.is_dir():
            raise RunError(f"output path {out} is a file; choose a folder with --out")
        if out.is_dir() and any(out.iterdir()) and not any((out / m).exists() for m in RUN_MARKERS):
            raise RunError(
                f"output folder {out} is not empty and holds no rung run; choose another --out "
                "(rung replaces only folders it wrote)"
            )
        parent = out.parent if out.parent != Path("") else Path(".")
        if parent.exists() and not os.access(parent, os.W_OK):
            raise RunError(f"cannot write to {parent}; choose another --out")

    def write(
        self,
        results: RunResults,
        predictions: Sequence[PredictionRow],
        spec: BaseModel,
        reports: Mapping[str, str] | None = None,
    ) -> None:
        """Write the run (``spec`` as ``spec_as_run`` gives it; ``reports``: file name → text),
        replacing an earlier run in the folder, in one step."""
        files = {
            SPEC: yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False, allow_unicode=True),
            RESULTS: results.to_text(),
            PREDICTIONS: "\n".join(p.to_line() for p in predictions) + "\n",
            **(reports or {}),
        }
        self.write_files(files)

    def write_files(self, files: Mapping[str, str]) -> None:
        """Write ``files`` (name → text) as the folder, replacing an earlier run there."""
        self.check_writable()
        out = self.path.resolve()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            for name, text in files.items():
                (tmp / name).write_text(text, encoding="utf-8")
            if out.exists():
                out.rename(old)
            tmp.rename(out)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if old.exists() and not out.exists():
                old.rename(out)
            raise
        shutil.rmtree(old, ignore_errors=True)
