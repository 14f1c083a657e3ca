"""``rung compare`` on a spec whose task is ``answer``: run it and show a table per rung."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
from rich.table import Table

from rung.cli.common import console, err_console

__all__ = ["compare_answer_spec"]

SHOWN = [
    ("token_f1", "token F1"),
    ("rouge_l", "ROUGE-L"),
    ("exact_match", "EM"),
    ("from_context", "from context"),
    ("citation_precision", "cite P"),
    ("citation_recall", "cite R"),
    ("retrieval_recall", "recall@k"),
    ("retrieval_mrr", "MRR"),
]


def compare_answer_spec(spec_path: Path, out: Path) -> None:
    from rung.compare.answer import RESULTS, compare_answers, load_answer_spec

    spec = load_answer_spec(spec_path)
    results = compare_answers(
        spec,
        spec_path.resolve().parent,
        out,
        progress=lambda message: err_console.print(escape(message)),
    )
    table = Table(title=spec.name or spec_path.stem)
    table.add_column("rung")
    for _, title in SHOWN:
        table.add_column(title, justify="right")
    table.add_column("p50 ms", justify="right")
    for r in results:
        cells = []
        for name, _ in SHOWN:
            e = r.metrics.get(name)
            cells.append("-" if e is None else f"{e.value:.3f} [{e.ci95[0]:.2f}-{e.ci95[1]:.2f}]")
        table.add_row(escape(r.label), *cells, f"{r.latency_ms['p50']:.0f}")
    console.print(table)
    err_console.print(f"Wrote {out / RESULTS}")
