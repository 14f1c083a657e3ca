"""Advice before anything was measured: the catalog's candidates for a device, and the spec.

Nothing here is a measurement. The candidates are the catalog's local models whose memory
estimate fits the device at the given context, smallest first, each labelled "unmeasured";
API models are listed apart (they run off premises, and need a key to be measured). A task
whose rungs write text (every task type but classify) leaves the encoders out. The compare
spec that would measure the candidates is written to a file, its task section the task kind's
own starting one (``TaskKind.template``) with ``EDIT-ME`` placeholders the user must edit; the
spec is validated as ``rung compare`` reads it before it is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rung import fmt
from rung.catalog.cards import ModelCard
from rung.catalog.devices import Device, get_device
from rung.catalog.memory import fit
from rung.errors import RunError, SpecError
from rung.runs.spec import parse_spec
from rung.tasks.classify_kind import DATA_PLACEHOLDER
from rung.tasks.registry import kind_of, task_types

__all__ = [
    "DATA_PLACEHOLDER",
    "PLACEHOLDER",
    "SPEC_MARKER",
    "Candidate",
    "UnmeasuredAdvice",
    "spec_text",
    "unmeasured_advice",
    "write_spec",
]

#: what a placeholder in a starting spec begins with
PLACEHOLDER = "EDIT-ME"
SPEC_MARKER = "# Written by `rung advise`"


@dataclass(frozen=True)
class Candidate:
    card: ModelCard
    memory_bytes: int | None
    spare_bytes: int | None  # on the device; None without a device


@dataclass
class UnmeasuredAdvice:
    task: str
    device: Device | None
    context: int
    on_prem: bool
    candidates: list[Candidate]
    api_models: list[ModelCard]
    excluded: list[tuple[ModelCard, str]] = field(default_factory=list)

    def spec(self) -> dict[str, Any]:
        where = f" on a {self.device.name}" if self.device else ""
        return {
            "name": f"rung advise candidates for {self.task}{where}",
            "task": kind_of(self.task).template(),
            "models": [c.card.model_id for c in self.candidates],
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "measured": False,
            "task": self.task,
            "device": self.device.name if self.device else None,
            "context": self.context,
            "on_prem": self.on_prem,
            "candidates": [
                {
                    "model_id": c.card.model_id,
                    "status": "unmeasured",
                    "params": c.card.params,
                    "quantization": c.card.quantization,
                    "memory_bytes": c.memory_bytes,
                    "spare_bytes": c.spare_bytes,
                    "license": c.card.license,
                    "figures_from": c.card.figures_from,
                    "measured_here": c.card.measured_here,
                }
                for c in self.candidates
            ],
            "api_models": [
                {
                    "model_id": a.model_id,
                    "status": "unmeasured",
                    "input_per_mtok": a.price.input_per_mtok if a.price else None,
                    "output_per_mtok": a.price.output_per_mtok if a.price else None,
                }
                for a in self.api_models
            ],
            "excluded": [{"model_id": c.model_id, "why": why} for c, why in self.excluded],
            "spec": self.spec(),
        }


def unmeasured_advice(
    task: str,
    cards: Sequence[ModelCard],
    device: str | None = None,
    context: int = 4096,
    on_prem: bool = False,
) -> UnmeasuredAdvice:
    if task not in task_types():
        raise SpecError(f"unknown task {task!r}; rung advises on: {', '.join(task_types())}")
    generative = kind_of(task).generative
    dev = get_device(device) if device else None
    candidates: list[Candidate] = []
    apis: list[ModelCard] = []
    excluded: list[tuple[ModelCard, str]] = []
    for card in cards:
        if card.kind == "api":
            if on_prem and not card.on_prem:
                excluded.append((card, "runs off premises"))
            else:
                apis.append(card)
            continue
        if not card.installed:
            excluded.append((card, f"not installed: {card.install}"))
            continue
        if generative and card.kind == "encoder":
            excluded.append((card, f"does not write text, which the {task} task asks for"))
            continue
        if dev is None:
            candidates.append(Candidate(card, card.memory(context).total_bytes, None))
            continue
        f = fit(card, dev, context)
        if f.fits:
            candidates.append(Candidate(card, f.memory.total_bytes, f.spare_bytes))
        elif f.fits is None:
            excluded.append((card, "memory unknown: " + "; ".join(f.memory.notes)))
        else:
            excluded.append(
                (
                    card,
                    f"needs about {fmt.bytes_(f.memory.total_bytes)}; the {dev.name} leaves "
                    f"{fmt.bytes_(dev.usable_bytes)}",
                )
            )
    candidates.sort(key=lambda c: (c.card.params is None, c.card.params or 0))
    return UnmeasuredAdvice(task, dev, context, on_prem, candidates, apis, excluded)


def spec_text(advice: UnmeasuredAdvice) -> str:
    """The spec as YAML, with comments saying what to edit; checked against CompareSpec."""
    spec = advice.spec()
    if not spec["models"]:
        raise SpecError(
            "no catalog model fits "
            + (f"a {advice.device.name}" if advice.device else "here")
            + f" at {advice.context:,} tokens of context; try a smaller --context or device"
        )
    if advice.task == "classify":
        parse_spec(spec, "the advise spec")
        edit = [
            f"# EDIT task.data.path: {DATA_PLACEHOLDER} is a placeholder for your labelled data",
            "# (CSV with text and label columns; see `rung schema` for other formats).",
        ]
    else:
        from rung.compare.tasks import load_task_spec

        load_task_spec(spec, "the advise spec")
        edit = [
            f"# EDIT every {PLACEHOLDER}-... value: they are placeholders for your data (the "
            f"fields it has: `rung schema {advice.task}`).",
        ]
    header = [
        f"{SPEC_MARKER} --task {advice.task}"
        + (f" --device {advice.device.name}" if advice.device else ""),
        "# The models below were NOT measured: they are candidates whose memory estimate fits.",
        *edit,
        "# Then: rung compare <this file>   and   rung advise runs/<this file's name>",
    ]
    body = yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)
    tail = []
    if advice.api_models:
        tail.append("# Off-premises rungs (need OPENAI_API_KEY); uncomment to measure them too:")
        tail.extend(f"# - {a.model_id}" for a in advice.api_models)
    return "\n".join(header) + "\n" + body + ("\n".join(tail) + "\n" if tail else "")


def write_spec(path: Path, text: str) -> None:
    """Write the spec, refusing to replace a file rung advise did not write."""
    if path.exists():
        if path.is_dir():
            raise RunError(f"{path} is a folder; give a file name with --write-spec")
        try:
            first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        except (OSError, UnicodeDecodeError):
            first = ""
        if not first.startswith(SPEC_MARKER):
            raise RunError(
                f"{path} exists and was not written by rung advise; "
                "choose another --write-spec path or move the file"
            )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as e:
        raise RunError(f"cannot write {path} ({e.strerror}); choose another --write-spec") from None
