"""The cascade section of a serve config: written by ``route calibrate``, read by ``simulate``.

The section is what ``rung serve`` reads under ``cascades:``::

    cascades:
      fpb:
        rungs:
        - {model: encoder:minilm-l6, options: {}, threshold: 0.62, cost_usd_per_1k: 0.001}
        - {model: openai:gpt-4o-mini, options: {}, cost_usd_per_1k: 0.05}
        labels: [negative, neutral, positive]
        prompt: {...}          # the prompt the compare run asked generative rungs with
        train: {...}           # the run's training data, when a rung trains (an encoder head)

The prompt and the training data come from the run, because the thresholds were calibrated on
the answers the rungs gave to that prompt after that training.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pydantic import ValidationError

from rung.errors import ModelNotFoundError, RunError, SpecError
from rung.route.cascade import CascadeOptions, CascadeRung
from rung.route.policy import Policy
from rung.route.table import RunTable
from rung.runs.spec import CompareSpec

__all__ = ["cascade_section", "policy_of", "read_cascade", "write_cascade"]


def _short(threshold: float, conf: np.ndarray[Any, Any]) -> float:
    """The threshold with few decimals, when they keep every example on the same side."""
    keeps = conf >= threshold
    for digits in (2, 3, 4, 5, 6):
        rounded = round(threshold, digits)
        if 0 <= rounded <= 1 and np.array_equal(conf >= rounded, keeps):
            return rounded
    return float(threshold)


def _needs_training(model_id: str) -> bool:
    from rung.models.registry import backend_class, parse_model_id

    try:
        return bool(backend_class(parse_model_id(model_id)[0]).needs_training)
    except ModelNotFoundError:
        return False


def cascade_section(
    policy: Policy, table: RunTable, run_spec: CompareSpec | None = None
) -> dict[str, Any]:
    """The serve-config entry of ``policy``: its rungs with their options, thresholds and the
    run's cost per request, plus the run's labels, prompt and training data."""
    rungs: list[dict[str, Any]] = []
    for name, threshold in zip(policy.rungs, policy.thresholds, strict=True):
        col = table.rung(name)
        entry: dict[str, Any] = {"model": col.model}
        if col.label != col.model:
            entry["label"] = col.label
        entry["options"] = dict(col.options)
        if threshold is not None:
            entry["threshold"] = _short(threshold, col.confidence)
        if col.cost_usd_per_1k is not None:
            entry["cost_usd_per_1k"] = float(f"{col.cost_usd_per_1k:.6g}")
        rungs.append(entry)
    if table.task != "classify":
        # what the run's confidences were: an answer's grounding (/v1/ask applies the
        # thresholds per rung), else a generation's mean token probability (the cascade
        # generates on /v1/chat/completions)
        confidence = "grounded" if table.task == "answer" else "tokens"
        return {"rungs": rungs, "confidence": confidence}
    section = {"rungs": rungs, "labels": list(table.labels)}
    if run_spec is None:
        return section
    task = run_spec.task.model_dump(mode="json")
    section["prompt"] = task["prompt"]
    data = task["data"]
    if any(_needs_training(table.rung(n).model) for n in policy.rungs):
        train: dict[str, Any] = {"path": data["path"]}
        for key in ("format", "text", "label", "label_map"):
            if data.get(key) not in (None, {}, "text", "label"):
                train[key] = data[key]
        train["labels"] = list(table.labels)
        if task["train_size"] is not None:
            train["train_size"] = task["train_size"]
        train["seed"] = task["seed"]
        section["train"] = train
    return section


def write_cascade(path: Path, name: str, section: dict[str, Any]) -> bool:
    """Write ``section`` as ``cascades.<name>`` of the YAML file ``path``, keeping what else the
    file holds. Returns whether the file existed."""
    existed = path.exists()
    data: dict[str, Any] = {}
    if existed:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise SpecError(
                f"{path} exists and is not a readable YAML file ({e}); choose another --out"
            ) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise SpecError(f"{path} exists and is not a YAML mapping; choose another --out")
        data = loaded or {}
        if not isinstance(data.get("cascades", {}), dict):
            raise SpecError(f"{path}: cascades is not a mapping; fix it or choose another --out")
    data.setdefault("cascades", {})[name] = section
    text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as e:
        raise RunError(f"cannot write {path}: {e}; choose another --out") from None
    return existed


def read_cascade(path: Path, name: str | None = None) -> tuple[str, CascadeOptions]:
    """The cascade ``name`` (default: the only one) of a serve config or calibrate output."""
    if not path.is_file():
        raise SpecError(f"cascade file not found: {path}; write one with `rung route calibrate`")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        raise SpecError(f"{path} is not a readable YAML file: {e}") from None
    cascades = data.get("cascades") if isinstance(data, dict) else None
    if not isinstance(cascades, dict) or not cascades:
        raise SpecError(
            f"{path} has no cascades: section; write one with `rung route calibrate RUN --out "
            f"{path.name}`"
        )
    if name is None:
        if len(cascades) > 1:
            raise SpecError(
                f"{path} has several cascades ({', '.join(map(str, cascades))}); pick one "
                "with --name"
            )
        name = str(next(iter(cascades)))
    if name not in cascades:
        raise SpecError(f"{path} has no cascade {name!r}; it has: {', '.join(map(str, cascades))}")
    entry = cascades[name]
    if not isinstance(entry, dict) or "rungs" not in entry:
        raise SpecError(f"{path}: cascades.{name} has no rungs: list")
    keys = set(CascadeOptions.model_fields)
    try:
        options = CascadeOptions.model_validate({k: v for k, v in entry.items() if k in keys})
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()
        )
        raise SpecError(f"{path}: cascades.{name}: {problems}") from None
    return name, options


def policy_of(options: CascadeOptions, table: RunTable) -> Policy:
    """The cascade as a policy over the run's rungs (matched by label, else by model id)."""
    names = [_match(rung, table) for rung in options.rungs]
    return Policy(tuple(names), tuple(r.threshold for r in options.rungs))


def _match(rung: CascadeRung, table: RunTable) -> str:
    col = table.rung(rung.label or rung.model)
    if col.model != rung.model:
        raise SpecError(
            f"the cascade's rung {rung.display} is model {rung.model}, but {table.source}'s "
            f"rung {col.label} is {col.model}; label the rung with the run's label"
        )
    return col.label
