"""``answer`` as a task kind of ``rung compare``: every rung answers every question from the same
retrieved passages, and is scored on its answers, its citations and how grounded they are.

The passages are retrieved once per question, when the items are read (from ``task.index``, or
from an index of ``task.documents``), so the rungs differ only in what they write. An index of
``documents`` is built once into rung's cache folder (``indexes/<hash>``, the hash of the
embedding model and the files' contents), in a temporary folder renamed into place, so a build
that fails leaves nothing half-written and the next run of an unchanged spec reuses it.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from rung.errors import DataError
from rung.models.base import ChatMessage, GenerateRequest, stable_hash
from rung.rag.answer import answer_request, read_answer
from rung.rag.stores import Hit
from rung.tasks.answer import AnswerExample, AnswerTask, load_questions, score_answer, summarize
from rung.tasks.generate import parse_verdict
from rung.tasks.metrics import bootstrap_mean
from rung.tasks.registry import Item, TaskKind, TaskScores

__all__ = ["AnswerKind", "documents_index"]


def documents_index(task: AnswerTask, base_dir: Path) -> Path:
    """The index folder of ``task.documents``, built now unless an unchanged one is cached."""
    from rung.config import cache_dir
    from rung.rag.embedding import DEFAULT_MODEL, Embedder
    from rung.rag.indexer import build_index, find_files
    from rung.rag.search import INDEX_DB
    from rung.rag.stores import open_store, sqlite_url

    assert task.documents is not None
    paths = [Path(d) if Path(d).is_absolute() else base_dir / d for d in task.documents]
    for path in paths:
        if not path.exists():
            raise DataError(
                f"documents not found: {path}; task.documents names files or folders, relative "
                "to the spec's folder"
            )
    files = find_files(paths)
    model_id = task.embedding or DEFAULT_MODEL
    embedder = Embedder(model_id)
    contents = []
    for path, source in files:
        try:
            contents.append((source, hashlib.sha256(path.read_bytes()).hexdigest()))
        except OSError as e:
            raise DataError(f"cannot read {path}: {e.strerror}") from None
    key = stable_hash({"model": embedder.fingerprint(), "files": contents})[:16]
    root = cache_dir() / "indexes"
    folder = root / key
    if (folder / INDEX_DB).is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=root))
    try:
        store = open_store(sqlite_url(tmp / INDEX_DB))
        try:
            build_index(paths, store, embedder=embedder)
        finally:
            store.close()
            embedder.close()
        try:
            tmp.rename(folder)
        except OSError:
            if not (folder / INDEX_DB).is_file():  # not a concurrent run that finished first
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _hits(item: Item[str]) -> list[Hit]:
    hits: list[Hit] = item.extra["hits"]
    return hits


class AnswerKind(TaskKind[AnswerTask, str]):
    """Questions answered from retrieved passages; the item's reference is the answer."""

    task_type: ClassVar[str] = "answer"
    Spec: ClassVar[type[BaseModel]] = AnswerTask
    primary: ClassVar[str] = "token_f1"

    def template(self) -> dict[str, Any]:
        return {
            "type": "answer",
            "data": {
                "path": "EDIT-ME-path-to-your-questions.jsonl",
                "question": "question",
                "answer": "answer",
            },
            "documents": ["EDIT-ME-path-to-your-documents/"],
            "k": 4,
        }

    def load_items(
        self, spec: AnswerTask, base_dir: Path
    ) -> tuple[list[Item[str]], list[Item[str]]]:
        from rung.rag.search import Retriever

        questions = load_questions(spec.data, base_dir, spec.limit)
        if spec.index is not None:
            index: str | Path = spec.index if "://" in spec.index else base_dir / spec.index
        else:
            index = documents_index(spec, base_dir)
        retriever = Retriever.open(index)
        try:
            items = [
                Item(
                    q.id,
                    q.question,
                    q.answer,
                    {"gold": q.gold, "hits": retriever.search(q.question, spec.k, spec.mode)},
                )
                for q in questions
            ]
        finally:
            retriever.close()
        return [], items

    def build_requests(
        self, spec: AnswerTask, train: Sequence[Item[str]], test: Sequence[Item[str]]
    ) -> list[GenerateRequest]:
        return [answer_request(item.text, _hits(item), spec.max_tokens) for item in test]

    def score(
        self,
        spec: AnswerTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[str]],
        *,
        resamples: int = 1000,
        seed: int = 0,
        verdicts: Sequence[str | None] | None = None,
    ) -> TaskScores:
        """``verdicts``: the faithfulness judge's replies, one per answer, when there is one."""
        rows: list[dict[str, float | None]] = []
        details: list[dict[str, Any]] = []
        for output, item in zip(outputs, items, strict=True):
            hits = _hits(item)
            answer = read_answer(output or "", hits, min_overlap=spec.min_overlap)
            example = AnswerExample(item.id, item.text, item.reference, tuple(item.extra["gold"]))
            rows.append(score_answer(example, hits, answer, spec.k))
            details.append(
                {
                    "cited": answer.cited_ids,
                    "retrieved": [h.chunk.id for h in hits],
                    "grounded": answer.grounding.to_json(),
                }
            )
        per_item = [{k: v for k, v in row.items() if v is not None} for row in rows]
        n = max(1, len(items))
        extras = {
            "abstained": float(sum(d["grounded"].get("abstained", False) for d in details)),
            "cited_per_answer": sum(len(d["cited"]) for d in details) / n,
        }
        metrics = summarize(rows, resamples=resamples, seed=seed)
        if verdicts is not None:
            grades = [parse_verdict(v) for v in verdicts]
            for row, grade in zip(per_item, grades, strict=True):
                row["faithfulness"] = grade if grade is not None else 0.0
            # An answer the judge did not grade counts as the lowest grade, as in `generate`.
            metrics["faithfulness"] = bootstrap_mean(
                [r["faithfulness"] for r in per_item], resamples=resamples, seed=seed
            )
            extras["judge_ungraded"] = float(sum(g is None for g in grades))
        return TaskScores(
            per_item,
            metrics,
            self.primary,
            extras,
            details=details,
            confidence=[r["confidence"] for r in rows],
        )

    def judge(self, spec: AnswerTask) -> tuple[str, dict[str, Any]] | None:
        return (spec.judge.model, spec.judge.options) if spec.judge is not None else None

    def judge_requests(
        self, spec: AnswerTask, outputs: Sequence[str | None], items: Sequence[Item[str]]
    ) -> list[GenerateRequest]:
        """One grading request per answer: the rubric, then the passages, question and answer."""
        assert spec.judge is not None
        requests = []
        for output, item in zip(outputs, items, strict=True):
            passages = "\n\n".join(
                f"[{n}] {h.chunk.text.strip()}" for n, h in enumerate(_hits(item), 1)
            )
            user = (
                f"PASSAGES:\n{passages}\n\nQUESTION:\n{item.text}\n\n"
                f"ANSWER:\n{output or ''}\n\nGrade (1-5):"
            )
            requests.append(
                GenerateRequest(
                    messages=(ChatMessage("system", spec.judge.rubric), ChatMessage("user", user)),
                    max_tokens=4,
                )
            )
        return requests
