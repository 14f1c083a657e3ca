"""``rung index`` (documents into a searchable index) and ``rung search`` (look at the hits)."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from types import TracebackType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from rung.cli.common import console, err_console, user_errors
from rung.cli.display import LiveDisplay
from rung.errors import DataError, SpecError

__all__ = ["IndexDisplay", "register"]


class IndexDisplay(LiveDisplay):
    """One bar per phase of a build: reading files, embedding chunks, writing the store."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<9}[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None

    def phase(self, name: str, total: int) -> None:
        if self._task is not None:
            task = self._progress.tasks[-1]
            self._progress.update(self._task, completed=task.total)
        self._task = self._progress.add_task("", total=total, phase=name)

    def advance(self, n: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, n)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            # a failed build ends in one line that says why, not beside half-filled bars
            self._progress.live.transient = True
        super().__exit__(exc_type, exc, tb)


def index_cmd(
    docs: Annotated[
        list[Path],
        typer.Argument(
            help="Files or folders: .md .txt .html .pdf .jsonl .csv .tsv .json.",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            "-o",
            help="Index folder (holds index.db, or index.json with --store).",
            show_default=False,
        ),
    ],
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Keep the chunks in a server store instead: postgresql://user@host/db, "
            "weaviate://host:8080 (default: sqlite in --out).",
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Embedding rung: encoder:minilm-l6 (bundled), openai:<embeddings model>, "
            "encoder:<tuned folder>. Default: the index's own, or encoder:minilm-l6.",
            show_default=False,
        ),
    ] = None,
    chunk_tokens: Annotated[
        int, typer.Option("--chunk-tokens", help="Tokens per chunk (words and punctuation).")
    ] = 256,
    overlap: Annotated[
        int, typer.Option("--overlap", help="Tokens each chunk shares with the one before.")
    ] = 32,
    text: Annotated[
        str | None,
        typer.Option(
            "--text",
            help="Tables: the text column (default: text, content, body or answer).",
            show_default=False,
        ),
    ] = None,
    id_column: Annotated[
        str | None,
        typer.Option(
            "--id", help="Tables: the id column (default: the row number).", show_default=False
        ),
    ] = None,
    title: Annotated[
        str | None,
        typer.Option(
            "--title",
            help="Tables: a title column that heads each record's chunks.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of a sentence.")
    ] = False,
) -> None:
    """Index documents for retrieval; run it again after an edit and only what changed is
    embedded again (chunks of removed files are deleted)."""
    from rung.rag import ChunkOptions, ReadOptions, build_index, store_url_for, write_pointer
    from rung.rag.stores import open_store

    chunking = ChunkOptions(tokens=chunk_tokens, overlap=overlap)
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} is a file; name a folder for the index")
    vector_store = open_store(store_url_for(out, store))
    display = IndexDisplay(err_console) if not as_json else None
    try:
        with display if display is not None else contextlib.nullcontext():
            report = build_index(
                docs,
                vector_store,
                model_id=model,
                chunking=chunking,
                read=ReadOptions(text=text, id=id_column, title=title),
                exclude=out,
                progress=display,
            )
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted:[/] the index was left as it was before")
        raise typer.Exit(130) from None
    finally:
        vector_store.close()
    if store:
        write_pointer(out, store)
    if as_json:
        sys.stdout.write(json.dumps(report.to_json(), indent=2) + "\n")
        return
    where = f"{out}" + (f" ({report.store})" if store else "")
    if report.up_to_date:
        console.print(
            f"[bold]{where}[/] is up to date: {report.chunks} chunks from "
            f"{_n(report.files, 'file')}, "
            f"nothing to embed ({report.model_id}).",
            highlight=False,
        )
        return
    removed = (
        f"; removed {_n(len(report.removed_sources), 'file')} no longer there"
        if report.removed_sources
        else ""
    )
    console.print(
        f"Indexed {_n(report.documents, 'document')} from {_n(report.files, 'file')} into "
        f"[bold]{where}[/]: "
        f"{report.chunks} chunks, {report.embedded} embedded, "
        + (f"{report.reused} moved (vectors kept), " if report.reused else "")
        + f"{report.unchanged} unchanged, "
        f"{report.deleted} deleted{removed} ({report.model_id}, {report.seconds:.1f} s).",
        highlight=False,
    )
    if report.truncated:
        err_console.print(
            f"[yellow]warning:[/] {report.truncated} chunks were longer than {report.model_id} "
            "reads; their ends were not embedded: lower --chunk-tokens",
            highlight=False,
        )
    console.print(f'Search it: rung search {out} "your question"', highlight=False)


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def search_cmd(
    index: Annotated[
        str, typer.Argument(help="An index folder, a .db file, or a store URL.", show_default=False)
    ],
    question: Annotated[str, typer.Argument(help="What to look for.", show_default=False)],
    k: Annotated[int, typer.Option("-k", help="Hits to show.")] = 5,
    mode: Annotated[
        str, typer.Option("--mode", help="hybrid (vector + keyword, fused), vector or keyword.")
    ] = "hybrid",
    source: Annotated[
        list[str] | None,
        typer.Option(
            "--source", help="Only chunks of this source (repeatable).", show_default=False
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model", "-m", help="Must be the index's own embedding model.", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the hits as JSON.")] = False,
) -> None:
    """Show the chunks of an index that best answer a question."""
    from rung.rag import MODES, Retriever

    if mode not in MODES:
        raise SpecError(f"--mode {mode!r}: use one of {', '.join(MODES)}")
    retriever = Retriever.open(index, model_id=model)
    try:
        hits = retriever.search(question, k=k, mode=mode, sources=source)
    finally:
        retriever.close()
    if as_json:
        rows: list[dict[str, Any]] = [
            {
                "id": h.chunk.id,
                "source": h.chunk.source,
                "record": h.chunk.record,
                "headings": list(h.chunk.headings),
                "start": h.chunk.start,
                "end": h.chunk.end,
                "score": h.score,
                "text": h.chunk.text,
            }
            for h in hits
        ]
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return
    if not hits:
        console.print("No hits.")
        return
    table = Table(title=f"{mode} search, {retriever.meta.model_id}", title_justify="left")
    for name, justify in (("#", "right"), ("score", "right"), ("where", "left"), ("text", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for rank, hit in enumerate(hits, 1):
        c = hit.chunk
        where = c.source + (f" #{c.record}" if c.record else "") + f" [{c.start}:{c.end}]"
        if c.headings:
            where += "\n" + " > ".join(c.headings)
        snippet = " ".join(c.text.split())
        table.add_row(
            str(rank),
            f"{hit.score:.3f}",
            escape(where),
            escape(snippet[:300] + ("..." if len(snippet) > 300 else "")),
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("index")(user_errors(index_cmd))
    app.command("search")(user_errors(search_cmd))
