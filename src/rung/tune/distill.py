"""``rung distill``: a teacher rung labels the texts, a small student learns from its labels.

The loop most teams can afford: few gold labels, plenty of unlabelled text, and a large model
that can label it. The teacher is any rung (an API model through the openai backend, a local
LLM, another tuned classifier); its answers go through the response cache that ``rung compare``
uses, one answer at a time, so an interrupted distillation resumes without paying twice and a
comparison that already asked the teacher makes the labels free. Labels below a confidence
threshold are dropped; the student is trained with ``rung tune`` on the rest, then scored on the
task's gold test split next to the teacher (accuracy on gold, agreement with the teacher), and
the labelling is priced (tokens × price for API teachers, machine time for local ones).

Leaks are kept out: texts of the test split are never labelled for training, and the few-shot
examples shown to the teacher (gold-labelled) are not part of the pool it labels.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from rung.catalog.costs import CostSpec, machine_cost, token_price
from rung.errors import DataError, SpecError, did_you_mean
from rung.export.folder import check_out
from rung.models import registry
from rung.models.base import Model, Prediction
from rung.responses import Progress, ask_through_cache
from rung.runs.spec import CompareSpec, ModelRef
from rung.tasks.classify import TaskData, build_requests, few_shot_examples, load_task_data
from rung.tasks.data import DataFormat, Example, read_examples
from rung.tasks.metrics import accuracy, bootstrap_ci, macro_f1
from rung.tune.encoder import TuneOptions, tune_classifier

__all__ = [
    "DistillReport",
    "DistillSettings",
    "Labelled",
    "Unlabelled",
    "distill",
    "label_pool",
    "pick_teacher",
    "read_unlabelled",
    "train_student",
]


class DistillSettings(BaseModel):
    """How the teacher's labels become training data."""

    model_config = ConfigDict(extra="forbid")

    threshold: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Keep a teacher label only when its confidence is at least this. Labels "
        "without a confidence (a teacher that gives no scores) are kept and counted.",
    )
    limit: int | None = Field(
        default=None, ge=1, description="Label at most this many texts of the pool."
    )


@dataclass(frozen=True)
class Unlabelled:
    """Texts for the teacher to label, read from a file; ``gold`` holds labels when the file
    has some (used only to report how good the teacher's labels were)."""

    path: Path
    texts: list[str]
    gold: list[str] | None


def read_unlabelled(
    path: Path,
    *,
    fmt: DataFormat | Literal["lines"] | None = None,
    text_field: str = "text",
    gold_field: str | None = None,
    encoding: str = "auto",
) -> Unlabelled:
    """Texts from a CSV/TSV/JSONL file (column ``text_field``) or a plain text file (one text
    per line); blank rows and repeated texts are dropped."""
    if not path.is_file():
        raise DataError(f"unlabelled data file not found: {path}; check the path")
    fmt = fmt or ("lines" if path.suffix.lower() in {".txt", ".text"} else None)
    if fmt == "lines":
        from rung.tasks.data import read_text

        texts = [line.strip() for line in read_text(path, encoding).splitlines()]
        rows = [(t, "") for t in texts if t]
    else:
        # Without a gold column, the text column is read as the label too (and ignored): the
        # readers of the compare spine then check the columns and give their own messages.
        examples = read_examples(
            path,
            fmt=fmt,
            text_field=text_field,
            label_field=gold_field or text_field,
            encoding=encoding,
        )
        rows = [(ex.text, ex.label if gold_field else "") for ex in examples if ex.text]
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for text, label in rows:
        if text not in seen:
            seen.add(text)
            kept.append((text, label))
    if not kept:
        raise DataError(f"{path} holds no texts; point --unlabelled at a file with texts")
    gold = [label for _, label in kept] if gold_field else None
    return Unlabelled(path=path, texts=[t for t, _ in kept], gold=gold)


def pick_teacher(spec: CompareSpec, teacher: str | None) -> ModelRef:
    """The teacher rung: a rung of the spec named by its label or id (its options come along),
    any other model id, or by default the spec's last rung (the ladder is listed small to
    large)."""
    if teacher is None:
        return spec.models[-1]
    for ref in spec.models:
        if teacher in (ref.display, ref.id):
            return ref
    if ":" not in teacher:
        names = [r.display for r in spec.models]
        raise SpecError(
            f"no rung {teacher!r} in the spec{did_you_mean(teacher, names)}; name a rung of the "
            f"spec ({', '.join(names)}) or give a model id such as openai:gpt-4o-mini"
        )
    return ModelRef(id=teacher)


@dataclass
class LabelStats:
    asked: int
    cached: int
    kept: int
    low_confidence: int
    unparsed: int
    no_confidence: int
    kept_by_label: dict[str, int]
    teacher_label_accuracy: float | None  # teacher labels vs gold labels of the pool, if any
    tokens_in: int
    tokens_out: int
    seconds: float


@dataclass
class DistillReport:
    teacher: str
    student_base: str
    out: Path
    pool: str
    labels: list[str]
    settings: dict[str, Any]
    labelling: LabelStats
    cost_usd: float | None
    cost_detail: str
    test_n: int
    teacher_test: dict[str, Any]
    student_test: dict[str, Any]
    agreement: float
    tune: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def _score(
    gold: Sequence[str], pred: Sequence[str | None], labels: Sequence[str]
) -> dict[str, Any]:
    est = bootstrap_ci(gold, pred, labels, "accuracy")
    return {
        "accuracy": est.value,
        "accuracy_ci": list(est.ci95),
        "macro_f1": macro_f1(gold, pred, labels),
    }


def _labelling_cost(
    teacher: Model, stats: LabelStats, fresh: int, cost: CostSpec
) -> tuple[float | None, str]:
    """What labelling the pool cost: tokens × price for rungs paid per token (or priced in the
    spec's cost.prices), machine time for self-hosted ones (from the throughput measured while
    labelling)."""
    teacher_id = teacher.model_id
    per_token = teacher.billing == "tokens"
    price, source = (
        token_price(teacher_id, cost) if per_token or teacher_id in cost.prices else (None, "")
    )
    if price is not None:
        usd = (
            stats.tokens_in * price.input_per_mtok + stats.tokens_out * price.output_per_mtok
        ) / 1e6
        return usd, (
            f"{stats.tokens_in} in + {stats.tokens_out} out tokens at ${price.input_per_mtok:g} / "
            f"${price.output_per_mtok:g} per million ({source})"
        )
    if per_token:
        return None, f"no price known for {teacher_id}: add it under cost.prices in the spec"
    if not fresh or stats.seconds <= 0:
        return None, "every label came from the cache: no labelling time measured this run"
    figure = machine_cost(fresh / stats.seconds, cost, "while labelling")
    machine_usd = None if figure.usd_per_1k is None else figure.usd_per_1k * stats.asked / 1000
    return machine_usd, figure.detail


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


@dataclass
class Labelled:
    """The teacher's work, ready for the student: the kept labels and what they cost."""

    data: TaskData
    teacher: str
    pool: str
    settings: DistillSettings
    texts: list[str]
    labels: list[str]
    stats: LabelStats
    cost_usd: float | None
    cost_detail: str
    teacher_test: list[str | None]


def distill(
    spec: CompareSpec,
    base_dir: Path,
    out: Path,
    *,
    teacher: ModelRef,
    student_base: str = "encoder:minilm-l6",
    unlabelled: Unlabelled | None = None,
    settings: DistillSettings | None = None,
    tune_options: Any = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    tune_progress: Any = None,
    force: bool = False,
) -> DistillReport:
    """Label a pool of texts with ``teacher``, train ``student_base`` on the confident labels,
    and score both on the task's gold test split: ``label_pool`` then ``train_student``."""
    labelled = label_pool(
        spec,
        base_dir,
        out,
        teacher=teacher,
        unlabelled=unlabelled,
        settings=settings,
        use_cache=use_cache,
        progress=progress,
        force=force,
    )
    return train_student(
        labelled,
        out,
        student_base=student_base,
        tune_options=tune_options,
        progress=tune_progress,
        force=force,
    )


def label_pool(
    spec: CompareSpec,
    base_dir: Path,
    out: Path,
    *,
    teacher: ModelRef,
    unlabelled: Unlabelled | None = None,
    settings: DistillSettings | None = None,
    use_cache: bool = True,
    progress: Progress | None = None,
    force: bool = False,
) -> Labelled:
    """Ask ``teacher`` to label the pool and the gold test split (through the response cache)
    and keep the labels that pass the threshold. The pool is ``unlabelled``'s texts, or else
    the task's training split with its gold labels hidden (they only measure the teacher's
    labels). ``out`` is checked here, before the teacher is paid for anything."""
    settings = settings or DistillSettings()
    data = load_task_data(spec.task, base_dir)
    labels = list(data.labels)
    model = registry.create(teacher.id, teacher.options)
    model.check()
    if not model.can_classify:
        raise SpecError(f"{teacher.id} cannot classify; pick a teacher rung that labels texts")
    # Refuse an occupied output folder before the teacher is paid for anything.
    check_out(out, force)

    shots = (
        {
            ex.text
            for ex in few_shot_examples(data.train, labels, spec.task.prompt.shots, spec.task.seed)
        }
        if spec.task.prompt.shots
        else set()
    )
    test_texts = {ex.text for ex in data.test}
    if unlabelled is not None:
        rows = list(
            zip(unlabelled.texts, unlabelled.gold or [""] * len(unlabelled.texts), strict=True)
        )
        pool_name = str(unlabelled.path)
    else:
        rows = [(ex.text, ex.label) for ex in data.train]
        pool_name = f"the training split of {spec.task.data.path} (gold labels hidden)"
    rows = [(t, g) for t, g in rows if t not in test_texts and t not in shots]
    if settings.limit is not None:
        rows = rows[: settings.limit]
    if not rows:
        raise DataError(
            f"no texts left to label in {pool_name} once the test split and the prompt's "
            "examples are set aside; give more texts with --unlabelled"
        )
    has_gold = unlabelled is None or unlabelled.gold is not None
    pool = [Example(id=f"pool-{i}", text=t, label=g) for i, (t, g) in enumerate(rows)]

    pool_requests = build_requests(
        spec.task, TaskData(train=data.train, test=pool, labels=data.labels)
    )
    test_requests = build_requests(spec.task, data)
    label = teacher.display

    async def ask() -> tuple[Any, Any]:
        try:
            asked_pool = await ask_through_cache(
                model, pool_requests, data, use_cache=use_cache, progress=progress, label=label
            )
            asked_test = await ask_through_cache(
                model,
                test_requests,
                data,
                use_cache=use_cache,
                progress=progress,
                label=f"{label} (test split)",
            )
        finally:
            model.close()
        return asked_pool, asked_test

    asked_pool, asked_test = asyncio.run(ask())
    preds: list[Prediction] = asked_pool.predictions
    kept_texts: list[str] = []
    kept_labels: list[str] = []
    low = unparsed = no_conf = 0
    for ex, p in zip(pool, preds, strict=True):
        if p.label is None or p.label not in labels:
            unparsed += 1
        elif p.confidence is None:
            no_conf += 1
            kept_texts.append(ex.text)
            kept_labels.append(p.label)
        elif p.confidence < settings.threshold:
            low += 1
        else:
            kept_texts.append(ex.text)
            kept_labels.append(p.label)
    fresh = len(pool) - asked_pool.cached
    stats = LabelStats(
        asked=len(pool),
        cached=asked_pool.cached,
        kept=len(kept_texts),
        low_confidence=low,
        unparsed=unparsed,
        no_confidence=no_conf,
        kept_by_label={lab: Counter(kept_labels).get(lab, 0) for lab in labels},
        teacher_label_accuracy=(
            accuracy([ex.label for ex in pool], [p.label for p in preds], labels)
            if has_gold
            else None
        ),
        tokens_in=sum(p.tokens_in for p in preds),
        tokens_out=sum(p.tokens_out for p in preds),
        seconds=asked_pool.fresh_seconds,
    )
    missing = [lab for lab, n in stats.kept_by_label.items() if n < 2]
    if missing:
        raise DataError(
            "the teacher's kept labels leave too few examples of "
            + ", ".join(f"{lab!r} ({stats.kept_by_label[lab]})" for lab in missing)
            + f" among {stats.kept} kept of {stats.asked} texts; lower --threshold, label more "
            "texts, or check the teacher's answers with rung compare"
        )
    cost_usd, cost_detail = _labelling_cost(model, stats, fresh, spec.cost)

    return Labelled(
        data=data,
        teacher=teacher.id,
        pool=pool_name,
        settings=settings,
        texts=kept_texts,
        labels=kept_labels,
        stats=stats,
        cost_usd=cost_usd,
        cost_detail=cost_detail,
        teacher_test=[p.label for p in asked_test.predictions],
    )


def train_student(
    labelled: Labelled,
    out: Path,
    *,
    student_base: str = "encoder:minilm-l6",
    tune_options: Any = None,
    progress: Any = None,
    force: bool = False,
) -> DistillReport:
    """Fine-tune ``student_base`` on the teacher's kept labels with ``rung tune``, score the
    student and the teacher on the gold test split, and write ``distill.json`` beside the
    student's model card."""
    options = tune_options if tune_options is not None else TuneOptions()
    data, stats = labelled.data, labelled.stats
    labels = list(data.labels)
    gold_test = [ex.label for ex in data.test]
    started = time.perf_counter()
    result = tune_classifier(
        student_base,
        labelled.texts,
        labelled.labels,
        labels,
        out,
        options,
        test_texts=[ex.text for ex in data.test],
        test_labels=gold_test,
        data_info={
            "path": labelled.pool,
            "labelled_by": labelled.teacher,
            "threshold": labelled.settings.threshold,
            "n_labelled": stats.asked,
            "n_kept": stats.kept,
        },
        progress=progress,
        force=force,
    )
    tune_seconds = time.perf_counter() - started

    student_preds = _student_predictions(out, [ex.text for ex in data.test], labels)
    teacher_test = labelled.teacher_test
    report = DistillReport(
        teacher=labelled.teacher,
        student_base=student_base,
        out=out,
        pool=labelled.pool,
        labels=labels,
        settings=labelled.settings.model_dump(),
        labelling=stats,
        cost_usd=labelled.cost_usd,
        cost_detail=labelled.cost_detail,
        test_n=len(data.test),
        teacher_test=_score(gold_test, teacher_test, labels),
        student_test=_score(gold_test, student_preds, labels),
        agreement=sum(a == b for a, b in zip(student_preds, teacher_test, strict=True))
        / len(gold_test),
        tune={"seconds": tune_seconds, "card": result.card},
    )
    _write_json_atomic(out / "distill.json", report.to_json())
    return report


def _student_predictions(folder: Path, texts: list[str], labels: list[str]) -> list[str | None]:
    """The trained student's labels for ``texts``, through the encoder rung users will run."""
    from rung.models.base import ClassifyRequest

    student = registry.create(f"encoder:{folder}", {})
    student.load()
    try:
        if student.needs_training:
            raise RuntimeError(f"{folder} holds no trained classifier head")
        requests = [ClassifyRequest(text=t, labels=tuple(labels), messages=()) for t in texts]
        preds = asyncio.run(student.classify(requests))
    finally:
        student.close()
    return [p.label for p in preds]
