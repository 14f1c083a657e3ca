"""``extract``: named entities in sentences, scored by entity-level precision, recall and F1
(seqeval) against the gold tags.

Data is CoNLL-style: one token a line with its tags in columns (the NER tag last), sentences
separated by blank lines, ``-DOCSTART-`` lines skipped. CoNLL-2003 is IOB1 and is turned into
IOB2 as read, so seqeval sees one scheme. A generative rung is asked to list the entities as a
JSON array of ``{"text", "type"}`` (``TYPE: text`` lines are accepted too); each is placed on
the sentence's tokens (``align_entities``) and the tags are scored like a tagger's.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import DataError
from rung.models.base import GenerateRequest
from rung.tasks.data import read_text
from rung.tasks.generative import GenerativePrompt, Splits, render_requests, split_items
from rung.tasks.registry import Item, TaskKind, TaskScores
from rung.tasks.text_metrics import align_entities, entity_prf, iob1_to_iob2

__all__ = ["ConllSource", "ExtractKind", "ExtractTask", "parse_entities", "read_conll"]

DEFAULT_INSTRUCTIONS = (
    "List the named entities in the sentence. Entity types: {types}.\n"
    'Answer with a JSON array only, e.g. [{"text": "John Smith", "type": "PER"}]; '
    "answer [] when there is none."
)


class ConllSource(BaseModel):
    """A CoNLL-style file of tagged tokens."""

    model_config = ConfigDict(extra="forbid")

    path: Path = Field(description="File path, relative to the spec file's folder.")
    scheme: Literal["iob1", "iob2"] = Field(
        default="iob1", description="Tag scheme of the file (CoNLL-2003 is iob1)."
    )
    encoding: str = Field(
        default="auto", description="Text encoding; auto tries UTF-8, then latin-1."
    )


class ExtractTask(BaseModel):
    """Find the named entities of each sentence."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["extract"] = "extract"
    data: ConllSource = Field(
        description="Tagged sentences; the training pool when test_data is set."
    )
    test_data: ConllSource | None = Field(default=None, description="A separate test file.")
    entity_types: list[str] = Field(
        default_factory=lambda: ["PER", "ORG", "LOC", "MISC"],
        description="The entity types asked for; entities of other types are dropped.",
    )
    splits: Splits = Field(default_factory=Splits)
    prompt: GenerativePrompt = Field(
        default_factory=lambda: GenerativePrompt(instructions=DEFAULT_INSTRUCTIONS, max_tokens=160)
    )


def read_conll(src: ConllSource, base_dir: Path) -> list[Item[list[str]]]:
    """Sentences as items: the tokens joined by spaces, IOB2 tags as the reference."""
    path = src.path if src.path.is_absolute() else base_dir / src.path
    items: list[Item[list[str]]] = []
    tokens: list[str] = []
    tags: list[str] = []

    def flush() -> None:
        if tokens:
            gold = iob1_to_iob2(tags) if src.scheme == "iob1" else list(tags)
            items.append(Item(str(len(items)), " ".join(tokens), gold, {"tokens": tuple(tokens)}))
            tokens.clear()
            tags.clear()

    for lineno, line in enumerate(read_text(path, src.encoding).splitlines(), 1):
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            continue
        cols = line.split()
        if len(cols) < 2:
            raise DataError(f"{path}:{lineno}: expected a token and its tag, got {line!r}")
        tokens.append(cols[0])
        tags.append(cols[-1])
    flush()
    if not items:
        raise DataError(f"{path} holds no tagged sentences")
    return items


def gold_entities(item: Item[list[str]]) -> list[dict[str, str]]:
    """The item's gold entities as the JSON a rung is asked to answer (for the shots)."""
    from seqeval.metrics.sequence_labeling import get_entities

    tokens = item.extra["tokens"]
    return [
        {"text": " ".join(tokens[s : e + 1]), "type": t} for t, s, e in get_entities(item.reference)
    ]


_LINE = re.compile(r"^\s*[-*]?\s*([A-Za-z]+)\s*[:=]\s*(.+?)\s*$")


def parse_entities(output: str | None, types: Sequence[str]) -> list[tuple[str, str]] | None:
    """(text, type) pairs from a rung's answer; None when it is neither a JSON array of
    entities nor ``TYPE: text`` lines."""
    if output is None:
        return None
    wanted = {t.upper(): t for t in types}
    start, end = output.find("["), output.rfind("]")
    if start >= 0 and end > start:
        try:
            data = json.loads(output[start : end + 1])
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list):
            found = []
            for ent in data:
                if isinstance(ent, dict) and isinstance(ent.get("text"), str):
                    kind = wanted.get(str(ent.get("type", "")).upper())
                    if kind:
                        found.append((ent["text"], kind))
            return found
    lines = [m for m in (_LINE.match(line) for line in output.splitlines()) if m]
    if lines:
        return [(m[2], wanted[m[1].upper()]) for m in lines if m[1].upper() in wanted]
    return None


class ExtractKind(TaskKind[ExtractTask, list[str]]):
    task_type: ClassVar[str] = "extract"
    Spec: ClassVar[type[BaseModel]] = ExtractTask
    primary: ClassVar[str] = "f1"

    def template(self) -> dict[str, Any]:
        return {
            "type": "extract",
            "data": {"path": "EDIT-ME-path-to-your-tagged-sentences.conll"},
            "splits": {"test_size": 200},
        }

    def load_items(
        self, spec: ExtractTask, base_dir: Path
    ) -> tuple[list[Item[list[str]]], list[Item[list[str]]]]:
        pool = read_conll(spec.data, base_dir)
        test = read_conll(spec.test_data, base_dir) if spec.test_data else None
        return split_items(pool, test, spec.splits)

    def build_requests(
        self, spec: ExtractTask, train: Sequence[Item[list[str]]], test: Sequence[Item[list[str]]]
    ) -> list[GenerateRequest]:
        return render_requests(
            spec.prompt,
            train,
            test,
            lambda item: json.dumps(gold_entities(item)),
            spec.splits.seed,
            types=", ".join(spec.entity_types),
        )

    def score(
        self,
        spec: ExtractTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[list[str]]],
        *,
        resamples: int = 1000,
        seed: int = 0,
    ) -> TaskScores:
        parsed = [parse_entities(o, spec.entity_types) for o in outputs]
        aligned = [
            align_entities(item.extra["tokens"], ents or [])
            for item, ents in zip(items, parsed, strict=True)
        ]
        metrics, per_item = entity_prf(
            [item.reference for item in items],
            [tags for tags, _ in aligned],
            unplaced=[n for _, n in aligned],
            resamples=resamples,
            seed=seed,
        )
        invalid = sum(p is None for p in parsed)
        return TaskScores(per_item, metrics, self.primary, {"invalid": float(invalid)})

    def tags_of(self, spec: ExtractTask, output: str | None, item: Item[list[str]]) -> list[str]:
        """The IOB2 tags an answer puts on the item's tokens (for predictions.jsonl)."""
        ents = parse_entities(output, spec.entity_types) or []
        return align_entities(item.extra["tokens"], ents)[0]
