"""The labelled data of a run: the label set, the training, validation and test splits, checked
with messages that say what to fix, and the stratified validation split drawn from the training
texts when none is given."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from rung.errors import DataError

__all__ = [
    "Split",
    "check_counts",
    "checked_labels",
    "checked_split",
    "split_validation",
    "without_texts",
]


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def checked_labels(label_set: Sequence[str]) -> tuple[str, ...]:
    labels = tuple(str(x) for x in label_set)
    if len(labels) < 2:
        raise DataError(
            f"a classifier needs at least two labels, got {list(labels)}; list every label of "
            "the task"
        )
    dupes = sorted(x for x, n in Counter(labels).items() if n > 1)
    if dupes:
        raise DataError(f"labels listed twice: {', '.join(dupes)}; list each label once")
    return labels


def checked_split(
    what: str,
    texts: Sequence[str] | None,
    labels: Sequence[str] | None,
    label_set: Sequence[str],
) -> Split:
    if texts is None or labels is None:
        raise DataError(f"the {what} texts and labels must be given together")
    if len(texts) != len(labels):
        raise DataError(
            f"{len(texts)} {what} texts but {len(labels)} labels; give one label per text"
        )
    if not texts:
        raise DataError(f"the {what} split is empty; give it labelled examples")
    unknown = Counter(str(lab) for lab in labels if lab not in label_set)
    if unknown:
        listed = ", ".join(f"{lab!r} ({n} rows)" for lab, n in unknown.most_common(5))
        raise DataError(
            f"{what} labels that are not in the label set ({', '.join(label_set)}): {listed}; "
            "add them to the labels (--labels) or rename them (--label-map)"
        )
    return Split([str(t) for t in texts], [str(lab) for lab in labels])


def without_texts(split: Split, texts: set[str]) -> tuple[Split, int]:
    kept = [(t, lab) for t, lab in zip(split.texts, split.labels, strict=True) if t not in texts]
    return Split([t for t, _ in kept], [lab for _, lab in kept]), len(split) - len(kept)


def check_counts(train: Split, labels: Sequence[str], need: int) -> None:
    counts = Counter(train.labels)
    short = [(lab, counts.get(lab, 0)) for lab in labels if counts.get(lab, 0) < need]
    if not short:
        return
    missing = ", ".join(f"{lab!r} has 0" for lab, n in short if n == 0)
    if missing:
        raise DataError(
            f"labels missing from the training data: {missing}; add examples of them, or remove "
            "them from the label set (--labels, task.labels) and from the test data"
        )
    listed = ", ".join(f"{lab!r} has {n}" for lab, n in short)
    raise DataError(
        f"too few training examples: {listed}; rung tune needs at least {need} of each label "
        "(one to train on and one to validate on): add examples, merge the label into another "
        "(--label-map OLD=NEW), or give a validation set"
    )


def split_validation(
    train: Split, labels: Sequence[str], size: float | int, seed: int
) -> tuple[Split, Split]:
    """Stratified: each label keeps its share in both parts, with at least one example in
    each. Original order within each part, so a seed fixes the split."""
    n = len(train)
    if isinstance(size, int) and size >= n:
        raise DataError(f"val_size {size} leaves no training examples out of {n}; lower --val-size")
    fraction = size / n if isinstance(size, int) else size
    rng = random.Random(seed)
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(train.labels):
        by_label[lab].append(i)
    chosen: set[int] = set()
    for lab in labels:
        group = by_label[lab]
        rng.shuffle(group)
        k = min(max(1, round(fraction * len(group))), len(group) - 1)
        chosen.update(group[:k])

    def part(keep: bool) -> Split:
        idx = [i for i in range(n) if (i in chosen) == keep]
        return Split([train.texts[i] for i in idx], [train.labels[i] for i in idx])

    return part(False), part(True)
