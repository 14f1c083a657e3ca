"""``rung index`` and ``rung search`` through the real command: a build and a search with the
bundled MiniLM, and every kind of bad input ending in one line, exit status 2 and nothing
written; a build killed half-way through writing leaves the previous index usable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rung.cli.main import app
from rung.rag import Retriever
from tests.rag.conftest import RETURNS_MD, make_scanned_pdf

runner = CliRunner()


def _index(*args: str) -> object:
    return runner.invoke(app, ["index", *args])


def _fails(args: list[str], expected: str) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert message.startswith("error:"), message
    assert expected in message, message
    assert len(message.splitlines()) <= 3, message  # one line (Rich may wrap a long one)
    return message


@pytest.fixture
def faq_docs(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    root.mkdir()
    (root / "returns.md").write_text(RETURNS_MD, encoding="utf-8")
    (root / "faq.jsonl").write_text(
        json.dumps({"id": "pay", "answer": "We accept Visa, Mastercard and PayPal."}) + "\n"
        + json.dumps({"id": "gift", "answer": "Gift cards never expire."}) + "\n",
        encoding="utf-8",
    )  # fmt: skip
    return root


def test_index_then_search(faq_docs: Path, tmp_path: Path) -> None:
    out = tmp_path / "idx"
    result = runner.invoke(app, ["index", str(faq_docs), "--out", str(out), "--id", "id"])
    assert result.exit_code == 0, result.output
    assert "Indexed 3 documents from 2 files" in result.stdout
    assert (out / "index.db").is_file()
    found = runner.invoke(app, ["search", str(out), "Can I pay with PayPal?", "-k", "2", "--json"])
    assert found.exit_code == 0, found.output
    hits = json.loads(found.stdout)
    assert hits[0]["source"] == "faq.jsonl" and hits[0]["record"] == "pay"
    assert len(hits) == 2
    table = runner.invoke(
        app, ["search", str(out), "refund", "--mode", "keyword", "--source", "returns.md"]
    )
    assert table.exit_code == 0 and "returns.md" in table.stdout and "faq.jsonl" not in table.stdout
    again = runner.invoke(app, ["index", str(faq_docs), "--out", str(out), "--id", "id"])
    assert again.exit_code == 0 and "is up to date" in again.stdout


def test_bad_documents_stop_the_build_before_anything_is_written(tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Fine\n\nText.\n")
    out = tmp_path / "idx"
    (docs / "empty.md").write_text("")
    _fails(["index", str(docs), "--out", str(out)], "empty.md is empty")
    (docs / "empty.md").unlink()
    (docs / "photo.txt").write_bytes(b"\x00\x01\x02binary")
    _fails(["index", str(docs), "--out", str(out)], "looks like a binary file")
    (docs / "photo.txt").unlink()
    make_scanned_pdf(docs / "scan.pdf", tmp_path)
    _fails(["index", str(docs), "--out", str(out)], "scan.pdf has no text layer")
    _fails(["index", str(tmp_path / "nowhere"), "--out", str(out)], "no such file or folder")
    _fails(["index", str(docs / "good.md"), "--out", str(out), "--overlap", "200"], "--overlap")
    _fails(
        ["index", str(docs / "good.md"), "--out", str(out), "--store", "mysql://x"],
        "unknown vector store URL",
    )
    _fails(
        [
            "index",
            str(docs / "good.md"),
            "--out",
            str(out),
            "--model",
            "llamacpp:smollm2-135m-instruct",
        ],
        "does not make embeddings",
    )
    assert not out.exists()


def test_searching_a_missing_index_or_with_another_model(
    tmp_path: Path, hash_embedder: str
) -> None:
    _fails(["search", str(tmp_path / "nothing"), "hello"], "no index at")
    empty = tmp_path / "empty"
    empty.mkdir()
    _fails(["search", str(empty), "hello"], "build one with `rung index DOCS --out")
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("# A\n\nAlpha text.\n")
    out = tmp_path / "idx"
    built = _index(str(docs), "--out", str(out), "--model", hash_embedder)
    assert built.exit_code == 0, built.output  # type: ignore[attr-defined]
    message = _fails(["search", str(out), "alpha", "--model", "encoder:minilm-l6"],
                     "built with another embedding model (hashvec:32)")  # fmt: skip
    assert "--model hashvec:32" in message
    before = (out / "index.db").read_bytes()
    _fails(
        ["index", str(docs), "--out", str(out), "--model", "encoder:minilm-l6"],
        "another embedding model",
    )
    assert (out / "index.db").read_bytes() == before
    _fails(["search", str(out), "alpha", "--mode", "fuzzy"], "--mode 'fuzzy'")
    not_an_index = tmp_path / "notes.db"
    not_an_index.write_text("just text")
    _fails(["search", str(not_an_index), "alpha"], "not a rung index")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _records(path: Path, n: int, version: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i in range(n):
            f.write(json.dumps({"id": str(i), "text": f"Answer {i}, version {version}."}) + "\n")


def test_a_build_killed_while_writing_leaves_the_previous_index(
    tmp_path: Path, hash_embedder: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    table = docs / "answers.jsonl"
    _records(table, 20000, "one")
    out = tmp_path / "idx"
    first = _index(str(docs), "--out", str(out), "--model", hash_embedder, "--id", "id")
    assert first.exit_code == 0, first.output  # type: ignore[attr-defined]
    retriever = Retriever.open(out)
    before = retriever.store.hashes()
    retriever.close()

    _records(table, 20000, "two")  # every chunk changes: the rewrite takes a while
    journal = out / "index.db-journal"
    proc = subprocess.Popen(
        [sys.executable, "-m", "rung.cli.main", "index", str(docs), "--out", str(out), "--id", "id"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ},
    )  # fmt: skip
    deadline = time.monotonic() + 120
    # pages saved in the rollback journal: the build is changing the file itself
    while proc.poll() is None and time.monotonic() < deadline and _size(journal) < 64 * 1024:
        time.sleep(0.002)
    assert _size(journal) > 0, f"the build never wrote: {proc.communicate()[1].decode()[-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL

    retriever = Retriever.open(out)  # SQLite rolls the hot journal back
    assert retriever.store.hashes() == before
    hits = retriever.search("Answer 17, version one.", k=1, mode="keyword")
    assert hits and "version one" in hits[0].chunk.text
    retriever.close()
    rerun = _index(str(docs), "--out", str(out), "--id", "id")
    assert rerun.exit_code == 0, rerun.output  # type: ignore[attr-defined]
    assert "20000 embedded" in rerun.stdout  # type: ignore[attr-defined]


def test_index_into_postgres_then_search_through_the_folder(
    tmp_path: Path, hash_embedder: str, pgvector_url: str
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "returns.md").write_text(RETURNS_MD, encoding="utf-8")
    out = tmp_path / "idx"
    url = pgvector_url + "?collection=cli_returns"
    built = _index(str(docs), "--out", str(out), "--store", url, "--model", hash_embedder)
    assert built.exit_code == 0, built.output  # type: ignore[attr-defined]
    assert json.loads((out / "index.json").read_text()) == {"store": url}
    assert not (out / "index.db").exists()
    found = runner.invoke(app, ["search", str(out), "refund card", "--mode", "keyword", "--json"])
    assert found.exit_code == 0, found.output
    assert "Refunds reach your card" in json.loads(found.stdout)[0]["text"]
