"""The classification task: its spec, its data splits, and the prompt generative rungs get."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from rung.errors import DataError, SpecError
from rung.models.base import ChatMessage, ClassifyRequest
from rung.tasks.data import DataFormat, Example, read_examples

__all__ = [
    "CalibrationSpec",
    "ClassifyTask",
    "DataSource",
    "PromptSpec",
    "TaskData",
    "build_requests",
    "few_shot_examples",
    "load_task_data",
    "shot_examples",
]

DEFAULT_INSTRUCTIONS = (
    "Classify the text into exactly one of these labels: {labels}.\nAnswer with the label only."
)


class DataSource(BaseModel):
    """A file of labelled examples and how to read it."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="File path, relative to the spec file's folder.")
    format: DataFormat | None = Field(
        default=None,
        description="csv, tsv, jsonl or at (one 'text@label' per line). Default: from the extension (.txt is at).",
    )
    text: str = Field(default="text", description="Column or JSON field holding the text.")
    label: str = Field(default="label", description="Column or JSON field holding the gold label.")
    id: str | None = Field(
        default=None, description="Column holding a unique example id (default: row number)."
    )
    encoding: str = Field(
        default="auto", description="Text encoding; auto tries UTF-8, then latin-1."
    )
    label_map: dict[str, str] = Field(
        default_factory=dict,
        description="Rename labels as read, e.g. {'0': negative, '1': positive}.",
    )
    dedupe: bool = Field(
        default=True,
        description="Drop rows whose text already appeared (keeping the first), so no text is in both train and test.",
    )

    @field_validator("label_map", mode="before")
    @classmethod
    def _keys_as_text(cls, value: object) -> object:
        # YAML reads `0: negative` with an int key; labels are compared as text.
        if isinstance(value, dict):
            return {str(k): str(v) for k, v in value.items()}
        return value


class PromptSpec(BaseModel):
    """How generative rungs are asked. Encoder rungs ignore it."""

    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(
        default=DEFAULT_INSTRUCTIONS,
        description="System prompt; {labels} is replaced by the comma-separated label list.",
    )
    shots: int = Field(
        default=0,
        ge=0,
        le=32,
        description="k-shot: examples per label taken from the training split and shown as prior turns.",
    )
    label_descriptions: dict[str, str] = Field(
        default_factory=dict,
        description="Optional one-line meaning per label, listed in the prompt.",
    )
    template: str = Field(
        default="{text}", description="User message; {text} is the example's text."
    )
    verbalizers: list[dict[str, str]] = Field(
        default_factory=list,
        description="Other words to ask for the labels with, each a map label → word, e.g. "
        "{negative: bad, neutral: neutral, positive: good}. With calibration on, the rung is "
        "asked with each candidate (the labels themselves, these, and built-in ones) on "
        "training examples and keeps the one that scores best there; answers are mapped back "
        "to the labels.",
    )

    @field_validator("verbalizers")
    @classmethod
    def _distinct_words(cls, verbalizers: list[dict[str, str]]) -> list[dict[str, str]]:
        for i, v in enumerate(verbalizers):
            words = [w.strip() for w in v.values()]
            if any(not w for w in words) or len(set(words)) < len(words):
                raise ValueError(f"verbalizer {i}: every label needs its own, non-empty word")
        return verbalizers


class CalibrationSpec(BaseModel):
    """How the label scores of generative rungs are corrected for the model's label bias (see
    rung.tasks.calibration). Encoder rungs, whose classifier head is trained on the task, are
    left as they are."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["auto", "fitted", "contextual", "none"] = Field(
        default="auto",
        description="fitted: a logistic regression on the labels' log-probabilities, fitted on "
        "training examples; contextual: divide by the label probabilities on content-free "
        "texts (N/A, '', [MASK]); none: the raw scores; auto: fitted when the training split "
        "has enough examples of every label, else contextual.",
    )
    examples: int = Field(
        default=60,
        ge=6,
        le=2000,
        description="Training examples (stratified, none of the prompt's shots) asked to fit "
        "the calibration and to choose the verbalizer; never test examples.",
    )
    choose_verbalizer: bool = Field(
        default=True,
        description="Try each verbalizer candidate on the calibration examples and keep the "
        "one with the best cross-validated accuracy there.",
    )
    shots: list[int] = Field(
        default_factory=list,
        description="Numbers of shots per label to try besides prompt.shots, e.g. [2, 4]: "
        "every number is asked with every verbalizer on the calibration examples and the best "
        "pair is kept per rung (a 135M instruct model may do better with fewer shots than a "
        "270M base model).",
    )

    @field_validator("shots")
    @classmethod
    def _shots(cls, shots: list[int]) -> list[int]:
        if any(k < 0 or k > 32 for k in shots):
            raise ValueError("each number of shots is from 0 to 32")
        return shots


class ClassifyTask(BaseModel):
    """Label each text with one of a fixed set of labels."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["classify"] = "classify"
    data: DataSource = Field(
        description="Labelled examples; split into train and test unless test_data is set."
    )
    test_data: DataSource | None = Field(
        default=None, description="A separate test file (then data is the training pool)."
    )
    labels: list[str] | None = Field(
        default=None,
        description="The label set, in the order reports show it. Default: every label in the data, sorted.",
    )
    train_size: int | float | None = Field(
        default=None,
        description="Training examples for rungs that train (count, or fraction of the pool).",
    )
    test_size: int | float | None = Field(
        default=None,
        description="Test examples (count, or fraction); stratified by label. Default: 20% split, or all of test_data.",
    )
    seed: int = Field(default=0, description="Seed for splits and sampling.")
    prompt: PromptSpec = Field(default_factory=PromptSpec)
    calibration: CalibrationSpec = Field(default_factory=CalibrationSpec)

    @field_validator("labels")
    @classmethod
    def _unique(cls, labels: list[str] | None) -> list[str] | None:
        if labels is None:
            return None
        labels = [str(x) for x in labels]
        if len(labels) < 2:
            raise ValueError("list at least two labels")
        dupes = [x for x, n in Counter(labels).items() if n > 1]
        if dupes:
            raise ValueError(f"labels listed twice: {', '.join(dupes)}")
        return labels

    @model_validator(mode="after")
    def _sizes(self) -> ClassifyTask:
        for name in ("train_size", "test_size"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, float) and not 0 < value < 1:
                raise ValueError(f"{name} as a fraction must be between 0 and 1, got {value}")
            if isinstance(value, int) and value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        return self


@dataclass(frozen=True)
class TaskData:
    train: list[Example]
    test: list[Example]
    labels: tuple[str, ...]


def _resolve(n: int | float | None, total: int) -> int | None:
    if n is None:
        return None
    if isinstance(n, float):
        return max(1, round(n * total))
    return min(n, total)


def _stratified_take(
    examples: Sequence[Example], n: int, rng: random.Random
) -> tuple[list[Example], list[Example]]:
    """Take n examples keeping label proportions (largest remainder); returns (taken, rest)."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_label[ex.label].append(ex)
    total = len(examples)
    quotas = {label: n * len(group) / total for label, group in by_label.items()}
    counts = {label: int(q) for label, q in quotas.items()}
    leftover = n - sum(counts.values())
    for label in sorted(quotas, key=lambda lab: (quotas[lab] - counts[lab], lab), reverse=True)[
        :leftover
    ]:
        counts[label] += 1
    taken: list[Example] = []
    rest: list[Example] = []
    for label in sorted(by_label):
        group = list(by_label[label])
        rng.shuffle(group)
        taken.extend(group[: counts[label]])
        rest.extend(group[counts[label] :])
    rng.shuffle(taken)
    rng.shuffle(rest)
    return taken, rest


def _check_labels(examples: Sequence[Example], labels: Sequence[str], where: Path) -> None:
    unknown = Counter(ex.label for ex in examples if ex.label not in labels)
    if unknown:
        listed = ", ".join(f"{lab!r} ({n} rows)" for lab, n in unknown.most_common(5))
        raise DataError(
            f"{where} has labels the spec does not list: {listed}; add them to task.labels, "
            "or rename them with data.label_map"
        )


def _dedupe(examples: Sequence[Example]) -> list[Example]:
    seen: set[str] = set()
    kept = []
    for ex in examples:
        if ex.text not in seen:
            seen.add(ex.text)
            kept.append(ex)
    return kept


def load_task_data(task: ClassifyTask, base_dir: Path) -> TaskData:
    """Read the files, check the labels, and draw the train and test sets (stratified, seeded)."""

    def read(src: DataSource) -> tuple[list[Example], Path]:
        path = src.path if src.path.is_absolute() else base_dir / src.path
        exs = read_examples(
            path,
            fmt=src.format,
            text_field=src.text,
            label_field=src.label,
            id_field=src.id,
            encoding=src.encoding,
            label_map=src.label_map,
        )
        return (_dedupe(exs) if src.dedupe else exs), path

    rng = random.Random(task.seed)
    pool, pool_path = read(task.data)
    test_read = read(task.test_data) if task.test_data is not None else None
    labels = task.labels or sorted(
        {ex.label for ex in pool} | {ex.label for ex in (test_read or ([], pool_path))[0]}
    )
    if len(labels) < 2:
        raise DataError(
            f"{pool_path} holds a single label ({labels[0]!r}); classification needs at least two"
        )
    _check_labels(pool, labels, pool_path)
    if test_read is not None:
        _check_labels(test_read[0], labels, test_read[1])
        test_all = test_read[0]
        n_test = _resolve(task.test_size, len(test_all))
        test = _stratified_take(test_all, n_test, rng)[0] if n_test is not None else list(test_all)
        # A training text that is also a test text would flatter the rungs that train.
        test_texts = {ex.text for ex in test_all}
        train_pool = [ex for ex in pool if ex.text not in test_texts]
        rng.shuffle(train_pool)
    else:
        n_test = _resolve(task.test_size, len(pool)) or max(1, round(0.2 * len(pool)))
        if n_test >= len(pool):
            raise DataError(
                f"{pool_path} has {len(pool)} examples, too few for test_size {task.test_size} "
                "and a training split; lower test_size or add test_data"
            )
        test, train_pool = _stratified_take(pool, n_test, rng)
    n_train = _resolve(task.train_size, len(train_pool))
    train = _stratified_take(train_pool, n_train, rng)[0] if n_train is not None else train_pool
    if not test:
        raise DataError("the test split is empty; raise test_size or add rows")
    return TaskData(train=train, test=test, labels=tuple(labels))


def few_shot_examples(
    train: Sequence[Example], labels: Sequence[str], shots: int, seed: int
) -> list[Example]:
    rng = random.Random(seed)
    picked: list[Example] = []
    for label in labels:
        group = [ex for ex in train if ex.label == label]
        picked.extend(rng.sample(group, min(shots, len(group))))
    rng.shuffle(picked)
    return picked


def build_requests(
    task: ClassifyTask,
    data: TaskData,
    *,
    verbalizer: Mapping[str, str] | None = None,
    texts: Sequence[str] | None = None,
) -> list[ClassifyRequest]:
    """One request per test example (or per text of ``texts``), with the prompt rendered from
    the spec. With a ``verbalizer`` the prompt and the request's labels use its words (the
    shots' answers too); the answers are mapped back with ``rung.tasks.verbalizers``."""
    prompt = task.prompt
    labels = data.labels
    unknown = sorted(set(prompt.label_descriptions) - set(labels))
    if unknown:
        raise SpecError(
            f"prompt.label_descriptions names labels that are not in the label set: {', '.join(unknown)}"
        )
    word = dict(verbalizer) if verbalizer is not None else {lab: lab for lab in labels}
    words = tuple(word[lab] for lab in labels)
    system = prompt.instructions.replace("{labels}", ", ".join(words))
    if prompt.label_descriptions:
        lines = [
            f"- {word[lab]}: {prompt.label_descriptions[lab]}"
            for lab in labels
            if lab in prompt.label_descriptions
        ]
        system += "\n\nLabels:\n" + "\n".join(lines)
    head: list[ChatMessage] = [ChatMessage("system", system)]
    for ex in shot_examples(task, data):
        head.append(ChatMessage("user", prompt.template.replace("{text}", ex.text)))
        head.append(ChatMessage("assistant", word[ex.label]))
    asked = [ex.text for ex in data.test] if texts is None else list(texts)
    return [
        ClassifyRequest(
            text=text,
            labels=words,
            messages=(*head, ChatMessage("user", prompt.template.replace("{text}", text))),
        )
        for text in asked
    ]


def shot_examples(task: ClassifyTask, data: TaskData) -> list[Example]:
    """The training examples the prompt shows (prompt.shots per label, in a seeded order)."""
    if not task.prompt.shots:
        return []
    return few_shot_examples(data.train, data.labels, task.prompt.shots, task.seed)
