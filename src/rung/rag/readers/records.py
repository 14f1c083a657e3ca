"""Tables of records: JSONL, CSV, TSV, and JSON (a list of objects, or an object holding one
such list, as FAQ exports often are). Each record with text is a document; its id comes from
the id column (or its row number) and its title, when a title column is named, heads its
chunks."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rung.errors import DataError, did_you_mean
from rung.rag.documents import Document, ReadOptions
from rung.rag.readers.text import decode, nonempty, read_bytes

__all__ = ["TEXT_COLUMNS", "read_records"]

#: the columns tried, in order, when no text column is named
TEXT_COLUMNS = ("text", "content", "body", "answer")


def _rows(path: Path, content: str) -> list[Mapping[str, Any]]:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows: list[Mapping[str, Any]] = []
        for lineno, line in enumerate(content.splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as e:
                raise DataError(f"{path}:{lineno}: not valid JSON ({e}); fix the line") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: each line must be a JSON object")
            rows.append(row)
        return rows
    if suffix == ".json":
        try:
            value = json.loads(content)
        except ValueError as e:
            raise DataError(f"{path}: not valid JSON ({e}); fix the file") from None
        if isinstance(value, dict):
            lists = [v for v in value.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise DataError(
                    f"{path}: expected a list of records, or an object holding exactly one "
                    f"list of records (it holds {len(lists)} lists); write it as JSONL"
                )
            value = lists[0]
        if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
            raise DataError(f"{path}: expected a list of JSON objects, one per record")
        return value
    delimiter = "\t" if suffix == ".tsv" else ","
    try:
        return list(csv.DictReader(io.StringIO(content), delimiter=delimiter))
    except csv.Error as e:
        raise DataError(f"{path}: not a valid {suffix[1:].upper()} file ({e})") from None


def _column(
    path: Path, rows: Sequence[Mapping[str, Any]], name: str | None, kind: str
) -> str | None:
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if name is None:
        if kind != "text":
            return None
        found = [c for c in TEXT_COLUMNS if c in columns]
        if not found:
            raise DataError(
                f"{path}: no text column (tried {', '.join(TEXT_COLUMNS)}); columns are: "
                f"{', '.join(map(str, columns))}; name one with --text"
            )
        return found[0]
    if name not in columns:
        raise DataError(
            f"{path}: no {kind} column {name!r}{did_you_mean(name, map(str, columns))}; "
            f"columns are: {', '.join(map(str, columns))}; set --{kind}"
        )
    return name


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def read_records(path: Path, source: str, options: ReadOptions) -> list[Document]:
    content = nonempty(decode(read_bytes(path), path), path)
    rows = _rows(path, content)
    if not rows:
        raise DataError(f"{path} holds no records; add some or leave it out")
    text_col = _column(path, rows, options.text, "text")
    id_col = _column(path, rows, options.id, "id")
    title_col = _column(path, rows, options.title, "title")
    assert text_col is not None
    documents: list[Document] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, 1):
        record = _cell(row.get(id_col)) if id_col else str(i)
        if not record:
            raise DataError(f"{path}: record {i} has no {id_col!r}; every record needs an id")
        if record in seen:
            raise DataError(f"{path}: the id {record!r} appears twice; ids must be unique")
        seen.add(record)
        text = _cell(row.get(text_col))
        if not text:
            raise DataError(
                f"{path}: record {record} has an empty {text_col!r}; fill it or remove the record"
            )
        title = _cell(row.get(title_col)) if title_col else ""
        documents.append(Document(source=source, text=text, record=record, title=title or None))
    return documents
