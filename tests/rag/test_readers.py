"""Each reader on real small files: the text it makes, the headings it keeps, the records it
splits, and one clear DataError for each kind of bad file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rung.errors import DataError
from rung.rag.documents import ReadOptions
from rung.rag.indexer import find_files
from rung.rag.readers import read_path
from rung.rag.readers.html import html_to_text
from tests.rag.conftest import PDF_TEXT, make_scanned_pdf, make_text_pdf


def test_markdown_keeps_the_file_as_text_and_its_headings(docs: Path) -> None:
    [doc] = read_path(docs / "returns.md", "returns.md")
    assert doc.text == (docs / "returns.md").read_text(encoding="utf-8")
    titles = [(h.level, h.title) for h in doc.headings]
    # the "# not a heading" line inside the code fence is no heading
    assert titles == [(1, "Help centre"), (2, "Returns"), (3, "Refund times"), (2, "Shipping")]
    for h in doc.headings:
        assert doc.text[h.start :].lstrip("#").strip().startswith(h.title)


def test_html_keeps_visible_text_and_headings_and_drops_scripts(docs: Path) -> None:
    [doc] = read_path(docs / "guides" / "shipping.html", "guides/shipping.html")
    assert doc.title == "Shipping guide"
    assert "never indexed" not in doc.text and "color: red" not in doc.text
    assert "We ship to 40 countries. Orders placed before noon leave the same day." in doc.text
    assert "Duties are paid by the recipient." in doc.text
    assert "UK: above £135" in doc.text  # entities decoded
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Shipping"), (2, "Customs & duties")]
    for h in doc.headings:
        assert doc.text[h.start : h.start + len(h.title)] == h.title


def test_html_block_elements_end_lines() -> None:
    text, headings, title = html_to_text("<div>one</div><div>two<br>three</div><p>four</p>")
    assert text == "one\ntwo\nthree\nfour\n"
    assert headings == () and title is None


def test_pdf_text_layer_with_a_heading_per_page(docs: Path) -> None:
    [doc] = read_path(docs / "warranty.pdf", "warranty.pdf")
    assert "two-year warranty" in doc.text
    assert "warranty@example.com" in doc.text
    assert [h.title for h in doc.headings] == ["Page 1", "Page 2"]
    assert doc.text[doc.headings[1].start :].startswith("Claims go to")
    assert " ".join(doc.text.split()).startswith(PDF_TEXT[:40])


def test_records_from_jsonl_csv_and_json(docs: Path, tmp_path: Path) -> None:
    jsonl = read_path(docs / "faq.jsonl", "faq.jsonl", ReadOptions(id="id", title="question"))
    assert [(d.record, d.title, d.text) for d in jsonl] == [
        ("q1", "Do you ship abroad?", "Yes, to 40 countries."),
        ("q2", "Can I pay by card?", "Visa and Mastercard."),
    ]
    csv_docs = read_path(docs / "faq.csv", "faq.csv", ReadOptions(id="id", title="title"))
    assert [(d.record, d.title, d.text) for d in csv_docs] == [
        ("c1", "Opening hours", "We open at 9."),
        ("c2", "Gift cards", "They never expire."),
    ]
    # a JSON object holding one list of records (the shape of the e-commerce FAQ export);
    # without an id column the record id is the row number
    path = tmp_path / "export.json"
    path.write_text(json.dumps({"questions": [{"answer": "A"}, {"answer": "B"}]}))
    assert [(d.record, d.text) for d in read_path(path, "export.json")] == [("1", "A"), ("2", "B")]


def test_find_files_walks_folders_and_names_sources_relative(docs: Path) -> None:
    found = find_files([docs])
    assert [s for _, s in found] == [
        "faq.csv",
        "faq.jsonl",
        "guides/shipping.html",
        "notes.txt",
        "returns.md",
        "warranty.pdf",
    ]


def _fails(path: Path, expected: str, options: ReadOptions | None = None) -> str:
    with pytest.raises(DataError) as info:
        read_path(path, path.name, options)
    message = str(info.value)
    assert expected in message, message
    assert str(path) in message or path.name in message
    return message


def test_empty_and_blank_files_are_refused(tmp_path: Path) -> None:
    for name in ("empty.md", "blank.txt", "empty.pdf", "empty.jsonl"):
        path = tmp_path / name
        path.write_text("  \n\n" if name.startswith("blank") else "", encoding="utf-8")
        _fails(path, "is empty")
    html = tmp_path / "scripts.html"
    html.write_text("<html><script>x()</script></html>")
    _fails(html, "no visible text")


def test_unreadable_files_are_refused(tmp_path: Path) -> None:
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    _fails(binary, "binary file")
    corrupt = tmp_path / "broken.pdf"
    corrupt.write_bytes(b"%PDF-1.7\nthis is not really a pdf\n")
    _fails(corrupt, "cannot read")
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{not json\n')
    _fails(bad_json, "bad.jsonl:2: not valid JSON")
    if os.geteuid() != 0:  # root reads any file
        locked = tmp_path / "locked.md"
        locked.write_text("# secret")
        locked.chmod(0)
        _fails(locked, "permission denied")


def test_pdf_without_a_text_layer_is_refused_with_what_to_do(tmp_path: Path) -> None:
    message = _fails(make_scanned_pdf(tmp_path / "scan.pdf", tmp_path), "no text layer")
    assert "OCR" in message


def test_tables_need_a_text_column_and_unique_ids(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("id,question\n1,Why?\n")
    _fails(path, "no text column")
    _fails(path, "no text column 'questoin' (did you mean 'question'", ReadOptions(text="questoin"))
    path.write_text("id,answer\n1,A\n1,B\n")
    _fails(path, "appears twice", ReadOptions(id="id"))
    path.write_text("id,answer\n1,A\n2,\n")
    _fails(path, "record 2 has an empty 'answer'", ReadOptions(id="id"))


def test_unknown_extensions_and_missing_paths(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"unknown extension '\.docx'"):
        (tmp_path / "a.docx").write_text("x")
        find_files([tmp_path / "a.docx"])
    with pytest.raises(DataError, match="no such file or folder"):
        find_files([tmp_path / "missing"])
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "a.docx").write_text("x")
    with pytest.raises(DataError, match="holds no documents rung reads"):
        find_files([tmp_path / "only"])


def test_a_text_pdf_made_here_is_read_back(tmp_path: Path) -> None:
    pdf = make_text_pdf(tmp_path / "one.pdf", ["Hello from page one."])
    [doc] = read_path(pdf, "one.pdf")
    assert doc.text.strip() == "Hello from page one."
