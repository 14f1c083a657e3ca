"""``tune_classifier``: one run, in order: check the labels, splits, base and ``out`` (before
anything loads), train with the chosen method in a staging folder, score the validation and test
splits with the best weights, write the model and its cards, rename the folder into place."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.errors import ConfigurationError, DataError, MissingDependencyError
from rung.export.folder import check_out, publish, staging
from rung.tune.encoder.base import check_base, resolve_base
from rung.tune.encoder.card import build_card, write_cards
from rung.tune.encoder.evaluation import metrics_with_ci
from rung.tune.encoder.full import train_full
from rung.tune.encoder.options import INSTALL, TuneOptions
from rung.tune.encoder.progress import NullProgress, TuneProgress
from rung.tune.encoder.setfit import train_setfit
from rung.tune.encoder.splits import (
    check_counts,
    checked_labels,
    checked_split,
    split_validation,
    without_texts,
)

__all__ = ["TuneResult", "tune_classifier"]


@dataclass
class TuneResult:
    out: Path
    card: dict[str, Any]
    #: accuracy, macro_f1, their 95% intervals and n, on the validation split (best weights)
    validation: dict[str, Any]
    test: dict[str, Any] | None
    best_epoch: float
    train_seconds: float


def tune_classifier(
    base: str,
    train_texts: Sequence[str],
    train_labels: Sequence[str],
    label_set: Sequence[str],
    out: Path,
    options: TuneOptions,
    *,
    val_texts: Sequence[str] | None = None,
    val_labels: Sequence[str] | None = None,
    test_texts: Sequence[str] | None = None,
    test_labels: Sequence[str] | None = None,
    data_info: dict[str, Any] | None = None,
    progress: TuneProgress | None = None,
    force: bool = False,
) -> TuneResult:
    """Fine-tune ``base`` (``encoder:minilm-l6``, ``encoder:<folder>``, ``encoder:<hub id>``,
    or the same without ``encoder:``) on the training texts and write the classifier folder
    ``out``. Everything the user can get wrong is checked before training starts."""
    labels = checked_labels(label_set)
    train = checked_split("training", train_texts, train_labels, labels)
    test = (
        checked_split("test", test_texts, test_labels, labels) if test_texts is not None else None
    )
    given_val = checked_split("validation", val_texts, val_labels, labels) if val_texts else None
    dropped = 0
    if test is not None:
        # A text of the test split trained or validated on would flatter the test figures.
        seen = set(test.texts)
        train, n_train_dropped = without_texts(train, seen)
        given_val, n_val_dropped = without_texts(given_val, seen) if given_val else (None, 0)
        dropped = n_train_dropped + n_val_dropped
        if given_val is not None and not len(given_val):
            raise DataError(
                "every validation text is also a test text; give a validation set apart from "
                "the test set, or none (one is then split off the training texts)"
            )
    if given_val is None:
        check_counts(train, labels, need=2)
        train, val = split_validation(train, labels, options.val_size, options.seed)
    else:
        check_counts(train, labels, need=1)
        val = given_val
    model_id, folder = resolve_base(base)
    check_base(model_id, folder, options)
    out = Path(out)
    check_out(out, force)
    device = _device(options.device)
    progress = progress or NullProgress()

    with staging(out) as tmp, _threads(options.threads):
        started = time.perf_counter()
        try:
            if options.method == "full":
                trained = train_full(folder, train, val, labels, options, device, progress, tmp)
            else:
                trained = train_setfit(folder, train, val, labels, options, device, progress, tmp)
        finally:
            progress.done()
        train_seconds = time.perf_counter() - started
        validation = metrics_with_ci(val, trained.predict(val.texts), labels, options.seed)
        tested = (
            metrics_with_ci(test, trained.predict(test.texts), labels, options.seed)
            if test
            else None
        )
        folder_tmp = tmp / "model"
        folder_tmp.mkdir()
        trained.save(folder_tmp)
        data = dict(data_info or {})
        data.update(
            {
                "n_train": len(train),
                "n_validation": len(val),
                "n_test": len(test) if test else 0,
            }
        )
        if dropped:
            data["dropped_test_overlap"] = dropped
        hyper = options.model_dump(mode="json", exclude={"device", "threads"})
        hyper["learning_rate"] = options.lr
        unused: tuple[str, ...] = (
            ("pairs_per_example", "contrastive_epochs", "head_c")
            if options.method == "full"
            else ("epochs", "eval_steps", "pooling", "head_init", "head_lr_multiplier")
        )
        if options.method == "full" and options.pooling == "cls":
            unused += ("head_init", "head_lr_multiplier")
        elif options.method == "full":
            hyper["head_lr_multiplier"] = options.head_speed
        for key in unused:
            hyper.pop(key)
        card = build_card(
            method=options.method,
            base=model_id,
            labels=list(labels),
            max_seq_length=options.max_seq_length,
            seed=options.seed,
            hyperparameters=hyper,
            data=data,
            validation=validation,
            test=tested,
            train_seconds=train_seconds,
            best_epoch=trained.best_epoch,
            history=trained.history,
            extra=trained.card_extra,
        )
        write_cards(folder_tmp, card, out.name)
        publish(folder_tmp, out)
    return TuneResult(
        out=out.resolve(),
        card=card,
        validation=validation,
        test=tested,
        best_epoch=trained.best_epoch,
        train_seconds=train_seconds,
    )


def _device(device: str) -> str:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError("rung tune", INSTALL) from e
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        return "mps" if mps is not None and mps.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError(
            f"device {device!r} is not available (torch sees no CUDA GPU); use --device cpu"
        )
    return device


@contextmanager
def _threads(n: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
