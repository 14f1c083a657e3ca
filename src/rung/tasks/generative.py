"""What the generative tasks share: the spec of their data (a JSONL file of records, the text
in one field and the references in others), their prompt (instructions, a template, k shots
from the training split) and how both become items and requests."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rung.errors import DataError
from rung.models.base import ChatMessage, GenerateRequest
from rung.tasks.data import jsonl_records, read_text
from rung.tasks.registry import Item

__all__ = [
    "GenerativePrompt",
    "RecordsSource",
    "Splits",
    "read_records",
    "reference_items",
    "reference_template",
    "render_requests",
    "split_items",
]

RefT = TypeVar("RefT")


class RecordsSource(BaseModel):
    """A JSONL file of records: one object a line."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="File path, relative to the spec file's folder.")
    text: str = Field(default="text", description="Field holding what the rung is shown.")
    references: list[str] = Field(
        default_factory=lambda: ["reference"],
        description="Field(s) holding the reference answer(s); several are scored together.",
    )
    id: str | None = Field(default=None, description="Field holding a unique id (default: line).")
    encoding: str = Field(
        default="auto", description="Text encoding; auto tries UTF-8, then latin-1."
    )


class Splits(BaseModel):
    """How many items are tested, and how many the shots are drawn from."""

    model_config = ConfigDict(extra="forbid")

    test_size: int | None = Field(
        default=None, ge=1, description="Test items (default: every item of the test file)."
    )
    train_size: int | None = Field(
        default=None, ge=0, description="Training items read for shots and for rungs that train."
    )
    seed: int = Field(default=0, description="Seed of the sampling and the bootstrap.")


class GenerativePrompt(BaseModel):
    """How generative rungs are asked."""

    model_config = ConfigDict(extra="forbid")

    instructions: str = Field(description="System prompt.")
    template: str = Field(default="{text}", description="User message; {text} is the item's text.")
    shots: int = Field(
        default=0,
        ge=0,
        le=16,
        description="Worked examples from the training split, as prior turns.",
    )
    max_tokens: int = Field(default=128, ge=1, le=4096, description="Longest answer, in tokens.")

    @model_validator(mode="after")
    def _has_text(self) -> GenerativePrompt:
        if "{text}" not in self.template:
            raise ValueError("prompt.template must contain {text}")
        return self


def reference_template(task_type: str, reference: str = "reference") -> dict[str, Any]:
    """The starting ``task:`` section of a task read from JSONL records (``rung advise``)."""
    return {
        "type": task_type,
        "data": {
            "path": f"EDIT-ME-path-to-your-{task_type}-data.jsonl",
            "text": "text",
            "references": [reference],
        },
        "splits": {"test_size": 200},
    }


def read_records(src: RecordsSource, base_dir: Path) -> list[Item[list[str]]]:
    """Items of a JSONL file: the text field and the reference fields (each a string, or a
    list of strings for several references)."""
    path = src.path if src.path.is_absolute() else base_dir / src.path
    items: list[Item[list[str]]] = []
    for lineno, rec in jsonl_records(read_text(path, src.encoding), path):
        missing = [f for f in (src.text, *src.references, src.id) if f and f not in rec]
        if missing:
            raise DataError(
                f"{path}:{lineno}: no field {missing[0]!r}; the record has {', '.join(sorted(rec))}"
            )
        refs: list[str] = []
        for name in src.references:
            value = rec[name]
            refs.extend(str(v) for v in value) if isinstance(value, list) else refs.append(
                str(value)
            )
        item_id = str(rec[src.id]) if src.id else str(lineno)
        items.append(Item(item_id, str(rec[src.text]), refs))
    if not items:
        raise DataError(f"{path} holds no records")
    return items


class ReferenceTask(Protocol):
    """A task section whose items are texts with references, read from JSONL."""

    @property
    def data(self) -> RecordsSource: ...
    @property
    def test_data(self) -> RecordsSource | None: ...
    @property
    def splits(self) -> Splits: ...


def reference_items(
    spec: ReferenceTask, base_dir: Path
) -> tuple[list[Item[list[str]]], list[Item[list[str]]]]:
    """(train, test) items of a summarize, translate or generate spec: its data file, split by
    its splits, or its separate test file."""
    pool = read_records(spec.data, base_dir)
    test = read_records(spec.test_data, base_dir) if spec.test_data else None
    return split_items(pool, test, spec.splits)


def split_items(
    items: Sequence[Item[RefT]], test_items: Sequence[Item[RefT]] | None, splits: Splits
) -> tuple[list[Item[RefT]], list[Item[RefT]]]:
    """(train, test): a separate test file is sampled as is; otherwise the pool is shuffled
    (seeded) and split, test first, so a train item is never also a test item."""
    rng = random.Random(splits.seed)
    if test_items is not None:
        test = list(test_items)
        if splits.test_size is not None and splits.test_size < len(test):
            test = rng.sample(test, splits.test_size)
        train = list(items)
    else:
        pool = list(items)
        rng.shuffle(pool)
        n_test = splits.test_size or max(1, round(0.2 * len(pool)))
        if n_test >= len(pool) and splits.train_size:
            raise DataError(
                f"{len(pool)} items are too few for test_size {n_test} and a training split; "
                "lower test_size or add test_data"
            )
        test, train = pool[:n_test], pool[n_test:]
    if splits.train_size is not None:
        train = train[: splits.train_size]
    return train, test


def render_requests(
    prompt: GenerativePrompt,
    train: Sequence[Item[RefT]],
    test: Sequence[Item[RefT]],
    answer_of: Callable[[Item[RefT]], str],
    seed: int = 0,
    **values: Any,
) -> list[GenerateRequest]:
    """One request per test item: the instructions (``{name}`` filled from ``values``), the
    shots as prior user/assistant turns (their answers from ``answer_of``), then the item."""
    system = prompt.instructions
    for name, value in values.items():
        system = system.replace("{" + name + "}", str(value))
    head = [ChatMessage("system", system)]
    shots = random.Random(seed).sample(list(train), min(prompt.shots, len(train)))
    for ex in shots:
        head.append(ChatMessage("user", prompt.template.replace("{text}", ex.text)))
        head.append(ChatMessage("assistant", answer_of(ex)))
    return [
        GenerateRequest(
            messages=(*head, ChatMessage("user", prompt.template.replace("{text}", item.text))),
            max_tokens=prompt.max_tokens,
        )
        for item in test
    ]
