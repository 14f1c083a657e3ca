"""Reading labelled examples from the files users have: CSV, TSV, JSONL, and ``text@label`` lines
(the financial phrasebank's format)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rung.errors import DataError

__all__ = ["DataFormat", "Example", "detect_format", "jsonl_records", "read_examples", "read_text"]

DataFormat = Literal["csv", "tsv", "jsonl", "at"]

_BY_SUFFIX: dict[str, DataFormat] = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "at",
}


@dataclass(frozen=True)
class Example:
    id: str
    text: str
    label: str


def detect_format(path: Path) -> DataFormat:
    fmt = _BY_SUFFIX.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"cannot tell the format of {path} from its extension; set format: to one of "
            "csv, tsv, jsonl, at (text@label lines)"
        )
    return fmt


def read_text(path: Path, encoding: str) -> str:
    if not path.exists():
        raise DataError(f"data file not found: {path}; check data.path in the spec")
    if not path.is_file():
        raise DataError(f"data path is not a file: {path}")
    raw = path.read_bytes()
    if encoding != "auto":
        try:
            return raw.decode(encoding)
        except (UnicodeDecodeError, LookupError) as e:
            raise DataError(f"cannot decode {path} as {encoding}: {e}; set data.encoding") from None
    # Many public data sets (the financial phrasebank among them) are latin-1, not UTF-8.
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def read_examples(
    path: Path,
    *,
    fmt: DataFormat | None = None,
    text_field: str = "text",
    label_field: str = "label",
    id_field: str | None = None,
    encoding: str = "auto",
    label_map: dict[str, str] | None = None,
) -> list[Example]:
    """All rows of ``path`` as Examples. Labels are strings (``0`` and ``"0"`` are the same
    label); ``label_map`` renames them (``{"0": "negative"}``)."""
    fmt = fmt or detect_format(path)
    content = read_text(path, encoding)
    rows: list[tuple[str, str, str | None]]
    if fmt == "at":
        rows = _read_at(content, path)
    elif fmt == "jsonl":
        rows = _read_jsonl(content, path, text_field, label_field, id_field)
    else:
        rows = _read_delimited(
            content, path, "," if fmt == "csv" else "\t", text_field, label_field, id_field
        )
    if not rows:
        raise DataError(f"{path} holds no examples; point data.path at a file with labelled rows")
    mapping = label_map or {}
    examples = []
    for i, (text, label, ident) in enumerate(rows):
        label = mapping.get(label, label)
        examples.append(Example(id=ident if ident is not None else str(i), text=text, label=label))
    ids = [e.id for e in examples]
    if len(set(ids)) != len(ids):
        raise DataError(
            f"{path}: the id column {id_field!r} has duplicate values; ids must be unique"
        )
    return examples


def _read_at(content: str, path: Path) -> list[tuple[str, str, str | None]]:
    rows: list[tuple[str, str, str | None]] = []
    for lineno, line in enumerate(content.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        text, sep, label = line.rpartition("@")
        if not sep or not text.strip() or not label.strip():
            raise DataError(
                f"{path}:{lineno}: expected 'text@label', got {line[:60]!r}; "
                "set data.format if this is not a text@label file"
            )
        rows.append((text.strip(), label.strip(), None))
    return rows


def _field_error(path: Path, kind: str, name: str, available: list[str]) -> DataError:
    from rung.errors import did_you_mean

    return DataError(
        f"{path}: no {kind} column {name!r}{did_you_mean(name, available)}; "
        f"columns are: {', '.join(available)}; set data.{kind} in the spec"
    )


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_delimited(
    content: str,
    path: Path,
    delimiter: str,
    text_field: str,
    label_field: str,
    id_field: str | None,
) -> list[tuple[str, str, str | None]]:
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    columns = list(reader.fieldnames or [])
    if not columns:
        raise DataError(
            f"{path} holds no examples (no header row); add a header naming the columns"
        )
    for kind, name in (("text", text_field), ("label", label_field), ("id", id_field)):
        if name is not None and name not in columns:
            raise _field_error(path, kind, name, columns)
    rows = []
    for rec in reader:
        text, label = _cell(rec.get(text_field)), _cell(rec.get(label_field))
        if not text and not label:
            continue
        rows.append((text, label, _cell(rec.get(id_field)) if id_field else None))
    return rows


def jsonl_records(content: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line of a JSONL file; a line that is not a
    JSON object is a DataError that names it."""
    for lineno, line in enumerate(content.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(
                f"{path}:{lineno}: not valid JSON ({e.msg}); each line must be one object"
            ) from None
        if not isinstance(rec, dict):
            raise DataError(f"{path}:{lineno}: each line must be a JSON object")
        yield lineno, rec


def _read_jsonl(
    content: str, path: Path, text_field: str, label_field: str, id_field: str | None
) -> list[tuple[str, str, str | None]]:
    rows = []
    for _, rec in jsonl_records(content, path):
        for kind, name in (("text", text_field), ("label", label_field), ("id", id_field)):
            if name is not None and name not in rec:
                raise _field_error(path, kind, name, sorted(rec))
        rows.append(
            (
                _cell(rec[text_field]),
                _cell(rec[label_field]),
                _cell(rec[id_field]) if id_field else None,
            )
        )
    return rows
