"""``classify`` as a registered task kind: a thin adapter over ``rung.tasks.classify`` (the
spec, the splits and the prompt stay there) and the accuracy / macro-F1 of
``rung.tasks.metrics``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel

from rung.models.base import ClassifyRequest
from rung.tasks.classify import ClassifyTask, TaskData, build_requests, load_task_data
from rung.tasks.data import Example
from rung.tasks.metrics import bootstrap_ci
from rung.tasks.registry import Item, TaskKind, TaskScores

__all__ = ["DATA_PLACEHOLDER", "ClassifyKind"]


def _example(item: Item[str]) -> Example:
    return Example(id=item.id, text=item.text, label=item.reference)


#: the data path of the starting spec (``rung advise --task classify``), for the user to edit
DATA_PLACEHOLDER = "EDIT-ME-path-to-your-labelled-data.csv"


class ClassifyKind(TaskKind[ClassifyTask, str]):
    task_type: ClassVar[str] = "classify"
    Spec: ClassVar[type[BaseModel]] = ClassifyTask
    primary: ClassVar[str] = "accuracy"
    generative: ClassVar[bool] = False

    def template(self) -> dict[str, Any]:
        return {
            "type": "classify",
            "data": {
                "path": DATA_PLACEHOLDER,
                "text": "text",
                "label": "label",
            },
            "test_size": 200,
            "seed": 0,
        }

    def load_items(
        self, spec: ClassifyTask, base_dir: Path
    ) -> tuple[list[Item[str]], list[Item[str]]]:
        data = load_task_data(spec, base_dir)
        labels = {"labels": data.labels}
        return (
            [Item(ex.id, ex.text, ex.label, labels) for ex in data.train],
            [Item(ex.id, ex.text, ex.label, labels) for ex in data.test],
        )

    def _labels(self, spec: ClassifyTask, items: Sequence[Item[str]]) -> tuple[str, ...]:
        if spec.labels:
            return tuple(spec.labels)
        for item in items:
            if "labels" in item.extra:
                return tuple(item.extra["labels"])
        return tuple(sorted({item.reference for item in items}))

    def build_requests(
        self, spec: ClassifyTask, train: Sequence[Item[str]], test: Sequence[Item[str]]
    ) -> list[ClassifyRequest]:
        data = TaskData(
            train=[_example(i) for i in train],
            test=[_example(i) for i in test],
            labels=self._labels(spec, [*test, *train]),
        )
        return build_requests(spec, data)

    def score(
        self,
        spec: ClassifyTask,
        outputs: Sequence[str | None],
        items: Sequence[Item[str]],
        *,
        resamples: int = 1000,
        seed: int = 0,
    ) -> TaskScores:
        labels = self._labels(spec, items)
        gold = [item.reference for item in items]
        metrics = {
            name: bootstrap_ci(gold, outputs, labels, name, resamples=resamples, seed=seed)
            for name in ("accuracy", "macro_f1")
        }
        per_item = [{"correct": float(o == g)} for o, g in zip(outputs, gold, strict=True)]
        invalid = sum(1 for o in outputs if o is None or o not in labels)
        return TaskScores(per_item, metrics, self.primary, {"invalid": float(invalid)})
