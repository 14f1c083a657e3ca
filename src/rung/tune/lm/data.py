"""The training data of a LoRA run: (prompt, completion) pairs from JSONL, CSV or TSV (a prompt
may be chat messages), the seeded validation split, and the checks with messages that say which
field or flag to fix."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rung.errors import DataError, did_you_mean
from rung.export.folder import file_sha256
from rung.models.base import ChatMessage
from rung.tasks.data import detect_format, jsonl_records, read_text

__all__ = [
    "PairData",
    "PromptLike",
    "TrainExample",
    "as_examples",
    "read_pairs",
    "split_validation",
    "system_of",
]

PromptLike = str | Sequence[ChatMessage | Mapping[str, str]]


@dataclass(frozen=True)
class TrainExample:
    """One training pair: the prompt as chat messages, and the answer the model should give."""

    messages: tuple[ChatMessage, ...]
    completion: str

    @classmethod
    def of(cls, prompt: PromptLike, completion: str, system: str | None = None) -> TrainExample:
        """From a prompt text (one user turn) or a list of messages (ChatMessage or
        ``{"role": ..., "content": ...}``); ``system`` is put first when the prompt has none."""
        if isinstance(prompt, str):
            messages: list[ChatMessage] = [ChatMessage("user", prompt)]
        else:
            messages = [_message(m) for m in prompt]
        if not messages:
            raise DataError("a training prompt holds no messages; give a text or messages")
        if system and messages[0].role != "system":
            messages.insert(0, ChatMessage("system", system))
        return cls(tuple(messages), completion)


def _message(m: ChatMessage | Mapping[str, str]) -> ChatMessage:
    if isinstance(m, ChatMessage):
        return m
    role, content = m.get("role"), m.get("content")
    if role not in ("system", "user", "assistant") or not isinstance(content, str):
        raise DataError(
            f"a message must be {{'role': system|user|assistant, 'content': text}}, got {m!r}"
        )
    return ChatMessage(role, content)  # type: ignore[arg-type]


@dataclass
class PairData:
    """The pairs read from a file, and how many rows were skipped for an empty field."""

    path: Path
    examples: list[TrainExample]
    skipped: int

    def info(self, input_field: str, output_field: str) -> dict[str, Any]:
        """The card's ``data`` facts about the file."""
        return {
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "input": input_field,
            "output": output_field,
            "rows_skipped": self.skipped,
        }


def read_pairs(
    path: Path,
    *,
    input_field: str = "prompt",
    output_field: str = "completion",
    fmt: Literal["jsonl", "csv", "tsv"] | None = None,
    system: str | None = None,
    encoding: str = "auto",
) -> PairData:
    """(prompt, completion) pairs from a JSONL, CSV or TSV file. In JSONL the input field may
    hold a text or a list of chat messages; rows with an empty input or output are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"no data file at {path}; give a JSONL, CSV or TSV file of prompt/completion pairs"
        )
    if fmt is None:
        detected = detect_format(path)
        if detected not in ("jsonl", "csv", "tsv"):
            raise DataError(
                f"{path}: tune-lm reads JSONL, CSV or TSV (one prompt and one completion per "
                "row); pass --format if the extension does not say which"
            )
        fmt = detected
    content = read_text(path, encoding)
    rows = (
        _jsonl_rows(content, path, input_field, output_field)
        if fmt == "jsonl"
        else _delimited_rows(
            content, path, "," if fmt == "csv" else "\t", input_field, output_field
        )
    )
    examples: list[TrainExample] = []
    skipped = 0
    for prompt, completion in rows:
        if not completion.strip() or (isinstance(prompt, str) and not prompt.strip()):
            skipped += 1
            continue
        examples.append(TrainExample.of(prompt, completion, system))
    if not examples:
        raise DataError(
            f"{path} holds no training pairs"
            + (
                f" ({skipped} rows have an empty {input_field!r} or {output_field!r})"
                if skipped
                else ""
            )
            + f"; give a file whose rows have a {input_field!r} and an {output_field!r} value"
        )
    return PairData(path=path, examples=examples, skipped=skipped)


def _missing_field(path: Path, where: str, name: str, flag: str, available: list[str]) -> DataError:
    return DataError(
        f"{path}{where}: no field {name!r}{did_you_mean(name, available)}; it has "
        f"{', '.join(available) or 'no fields'}: name the right one with {flag}"
    )


def _jsonl_rows(
    content: str, path: Path, input_field: str, output_field: str
) -> list[tuple[PromptLike, str]]:
    rows: list[tuple[PromptLike, str]] = []
    for lineno, rec in jsonl_records(content, path):
        for name, flag in ((input_field, "--input"), (output_field, "--output")):
            if name not in rec:
                raise _missing_field(path, f":{lineno}", name, flag, sorted(rec))
        prompt, completion = rec[input_field], rec[output_field]
        if not isinstance(completion, str):
            completion = "" if completion is None else str(completion)
        if isinstance(prompt, list):
            try:
                rows.append(([_message(m) for m in prompt], completion))
            except (DataError, AttributeError) as e:
                raise DataError(
                    f"{path}:{lineno}: {input_field!r} is a list but not of chat messages "
                    f"({e}); give a text or [{{'role': 'user', 'content': ...}}, ...]"
                ) from None
        else:
            rows.append(("" if prompt is None else str(prompt), completion))
    return rows


def _delimited_rows(
    content: str, path: Path, delimiter: str, input_field: str, output_field: str
) -> list[tuple[PromptLike, str]]:
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    columns = list(reader.fieldnames or [])
    if not columns:
        raise DataError(f"{path} is empty (no header row); add a header naming the columns")
    for name, flag in ((input_field, "--input"), (output_field, "--output")):
        if name not in columns:
            raise _missing_field(path, "", name, flag, columns)
    return [(rec.get(input_field) or "", rec.get(output_field) or "") for rec in reader]


def split_validation(
    examples: Sequence[TrainExample], size: float, seed: int
) -> tuple[list[TrainExample], list[TrainExample]]:
    """A seeded random validation split: ``size`` below 1 is a share, from 1 up a count. At
    least one example stays for training."""
    n = len(examples)
    count = round(n * size) if size < 1 else int(size)
    count = max(0, min(count, n - 1))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val = set(order[:count])
    return (
        [e for i, e in enumerate(examples) if i not in val],
        [e for i, e in enumerate(examples) if i in val],
    )


def as_examples(
    items: Sequence[TrainExample | tuple[PromptLike, str]], what: str
) -> list[TrainExample]:
    out: list[TrainExample] = []
    for item in items:
        if isinstance(item, TrainExample):
            out.append(item)
        else:
            prompt, completion = item
            out.append(TrainExample.of(prompt, completion))
    if not out and what == "training":
        raise DataError("no training examples; give at least one (prompt, completion) pair")
    return out


def system_of(examples: Sequence[TrainExample]) -> str | None:
    systems = {e.messages[0].content for e in examples if e.messages[0].role == "system"}
    return systems.pop() if len(systems) == 1 else None
