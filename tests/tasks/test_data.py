from __future__ import annotations

import json
from pathlib import Path

import pytest

from rung.errors import DataError
from rung.tasks.data import read_examples


def test_reads_financial_phrasebank_latin1_at_lines(fpb_path: Path) -> None:
    examples = read_examples(fpb_path)
    assert len(examples) == 2264
    assert {e.label for e in examples} == {"positive", "neutral", "negative"}
    # latin-1 characters survive (the file is not UTF-8)
    assert any("ä" in e.text or "ö" in e.text or "é" in e.text for e in examples)
    assert not any(e.text.endswith("@") for e in examples)


def test_reads_banking77_csv_with_column_mapping(shared_data: Path) -> None:
    examples = read_examples(
        shared_data / "banking77" / "test.csv", text_field="text", label_field="category"
    )
    assert len(examples) == 3080
    assert len({e.label for e in examples}) == 77


def test_reads_sst2_tsv_with_label_map(shared_data: Path) -> None:
    examples = read_examples(
        shared_data / "sst2" / "dev.tsv",
        text_field="sentence",
        label_field="label",
        label_map={"0": "negative", "1": "positive"},
    )
    assert len(examples) == 872
    assert {e.label for e in examples} == {"negative", "positive"}


def test_reads_jsonl_with_ids(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    rows = [{"uid": f"r{i}", "body": f"text {i}", "y": i % 2} for i in range(5)]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    examples = read_examples(path, text_field="body", label_field="y", id_field="uid")
    assert [e.id for e in examples] == [f"r{i}" for i in range(5)]
    assert [e.label for e in examples] == ["0", "1", "0", "1", "0"]


def test_missing_file_says_which(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file not found: .*nope\.csv"):
        read_examples(tmp_path / "nope.csv")


def test_missing_column_lists_columns_and_suggests(shared_data: Path) -> None:
    with pytest.raises(
        DataError,
        match=r"no label column 'categroy' \(did you mean 'category'\?\); columns are: text, category",
    ):
        read_examples(shared_data / "banking77" / "test.csv", label_field="categroy")


def test_empty_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("text,label\n", encoding="utf-8")
    with pytest.raises(DataError, match="holds no examples"):
        read_examples(path)


def test_malformed_at_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("good text@positive\nno label here\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.txt:2: expected 'text@label'"):
        read_examples(path)


def test_unknown_extension_asks_for_format(tmp_path: Path) -> None:
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"x")
    with pytest.raises(DataError, match="set format:"):
        read_examples(path)
