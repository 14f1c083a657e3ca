"""Fine-tuning an encoder classifier on labelled texts: ``tune_classifier``.

Two methods share the checks, the validation split, early stopping, the evaluation and the
folder writing:

- ``full`` (here): the encoder with a new classification head, every weight trained with
  cross-entropy (AdamW, linear warmup then decay, gradient clipping) in a plain torch loop. The
  head reads the mean of the token states by default (``pooling: mean``: how sentence encoders
  such as all-MiniLM-L6-v2 were trained, 1-3 points better than the first token on the financial
  phrasebank) and the folder is a sentence-transformers model plus ``head.safetensors``;
  ``pooling: cls`` writes a transformers ``*ForSequenceClassification`` folder instead;
- ``setfit`` (``rung.tune.setfit``): contrastive fine-tuning of a sentence-transformers body on
  pairs of examples, then a logistic-regression head; meant for 8-64 examples per class.

Runs are deterministic on one machine: the seed fixes the head's initialisation, dropout and the
order of the batches (one seeded generator, no sorting), so the same data, seed and settings
give the same figures. The validation split is drawn stratified from the training texts when
none is given; no test text is ever trained or validated on. The best weights (by validation
macro-F1 or accuracy) are kept in a checkpoint inside the run's hidden staging folder and
restored at the end.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    SpecError,
    validation_message,
)
from rung.models.encoder import (
    HEAD_FILE,
    EncoderModel,
    encoder_folder,
    head_probabilities,
    mean_pool,
    sequence_probabilities,
)
from rung.tasks.metrics import bootstrap_ci
from rung.tune.card import build_card, check_out, publish, staging, write_cards
from rung.tune.progress import NullProgress, TuneProgress

if TYPE_CHECKING:
    import numpy as np
    import torch
    from numpy.typing import NDArray

__all__ = [
    "INSTALL",
    "Split",
    "Trained",
    "TuneOptions",
    "TuneResult",
    "check_base",
    "head_arrays",
    "options_from",
    "resolve_base",
    "tune_classifier",
]

INSTALL = "pip install 'rung[tune]'"
#: default peak learning rates: a small encoder trained end to end takes a high one; setfit's
#: contrastive phase the setfit library's 2e-5
DEFAULT_LR = {"full": 1e-4, "setfit": 2e-5}
#: architectures that generate text: fine-tune those with LoRA, not as an encoder classifier
_DECODERS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")


class TuneOptions(BaseModel):
    """How to fine-tune. With the defaults, all-MiniLM-L6-v2 reaches 0.95 accuracy on the
    financial phrasebank's held-out 20% (frozen + logistic regression: 0.91; the first-token
    head, ``pooling: cls``: 0.92-0.94) in under four minutes on two CPU cores; see
    benchmarks/bench_tune.py."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["full", "setfit"] = Field(
        default="full",
        description="full: train every weight with a classification head. setfit: contrastive "
        "pairs then a logistic-regression head, for few examples per class (8-64).",
    )
    epochs: int = Field(default=4, ge=1, description="Passes over the training split (full).")
    pooling: Literal["mean", "cls"] = Field(
        default="mean",
        description="full: what the head reads. mean: the average of the token states (a "
        "sentence-transformers folder plus head.safetensors). cls: the first token through "
        "the model's pooler (a transformers *ForSequenceClassification folder).",
    )
    head_init: Literal["probe", "random"] = Field(
        default="probe",
        description="full, mean pooling: where the head starts. probe: a logistic regression "
        "on the frozen encoder's embeddings (linear probing, then fine-tuning: the encoder's "
        "features are not pulled about by a random head). random: a fresh head.",
    )
    head_lr_multiplier: float | None = Field(
        default=None,
        gt=0,
        description="full, mean pooling: the head learns this many times faster than the "
        "encoder. Default: 1 for a probed head, 10 for a random one.",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        description="Peak AdamW learning rate. Default: 1e-4 (full), 2e-5 (setfit).",
    )
    batch_size: int = Field(default=16, ge=1, description="Examples (setfit: pairs) per step.")
    max_seq_length: int = Field(
        default=128, ge=8, description="Tokens per text; longer texts are truncated."
    )
    weight_decay: float = Field(default=0.01, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        default=0.1, ge=0, lt=1, description="Share of the steps over which the rate warms up."
    )
    max_grad_norm: float = Field(default=1.0, gt=0, description="Gradient clipping norm.")
    patience: int = Field(
        default=2,
        ge=0,
        description="Stop after this many evaluations without a better validation score "
        "(0: never stop early). The best evaluation's weights are kept either way.",
    )
    eval_steps: int | None = Field(
        default=None,
        ge=1,
        description="full: evaluate every this many steps (and at the end). Default: every "
        "epoch. setfit evaluates after each contrastive epoch.",
    )
    metric: Literal["macro_f1", "accuracy"] = Field(
        default="macro_f1", description="Validation score that picks the best weights."
    )
    seed: int = Field(default=0, description="Seed of the head, dropout, batches and splits.")
    val_size: float | int = Field(
        default=0.1,
        description="Validation examples split off the training texts (stratified, at least "
        "one per class) when no validation set is given: a fraction or a count.",
    )
    device: str = Field(default="auto", description="Torch device: auto, cpu, cuda, cuda:1, mps.")
    threads: int | None = Field(
        default=None, ge=1, description="Torch CPU threads (default: torch's, one per core)."
    )
    pairs_per_example: int = Field(
        default=20,
        ge=2,
        description="setfit: pairs drawn per training example and epoch, half with the same "
        "label and half with another.",
    )
    contrastive_epochs: int = Field(
        default=1, ge=1, description="setfit: passes over freshly drawn pairs."
    )
    head_c: float = Field(
        default=10.0, gt=0, description="setfit: inverse regularization of the logistic head."
    )

    @field_validator("val_size")
    @classmethod
    def _size(cls, value: float | int) -> float | int:
        if isinstance(value, float) and not 0 < value < 1:
            raise ValueError(f"as a fraction it must be between 0 and 1, got {value}")
        if isinstance(value, int) and value < 1:
            raise ValueError(f"as a count it must be at least 1, got {value}")
        return value

    @property
    def lr(self) -> float:
        return self.learning_rate or DEFAULT_LR[self.method]

    @property
    def head_speed(self) -> float:
        if self.head_lr_multiplier is not None:
            return self.head_lr_multiplier
        return 1.0 if self.head_init == "probe" else 10.0


@dataclass
class TuneResult:
    out: Path
    card: dict[str, Any]
    #: accuracy, macro_f1, their 95% intervals and n, on the validation split (best weights)
    validation: dict[str, Any]
    test: dict[str, Any] | None
    best_epoch: float
    train_seconds: float


@dataclass(frozen=True)
class Split:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


@dataclass
class Trained:
    """What a method hands back: how to label texts with the best weights, and how to write
    them into the model folder."""

    predict: Callable[[Sequence[str]], list[str]]
    save: Callable[[Path], None]
    best_epoch: float
    history: list[dict[str, Any]] = field(default_factory=list)
    card_extra: dict[str, Any] = field(default_factory=dict)


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
    labels = _label_set(label_set)
    train = _split("training", train_texts, train_labels, labels)
    test = _split("test", test_texts, test_labels, labels) if test_texts is not None else None
    given_val = _split("validation", val_texts, val_labels, labels) if val_texts else None
    dropped = 0
    if test is not None:
        # A text of the test split trained or validated on would flatter the test figures.
        seen = set(test.texts)
        train, n_train_dropped = _without(train, seen)
        given_val, n_val_dropped = _without(given_val, seen) if given_val else (None, 0)
        dropped = n_train_dropped + n_val_dropped
        if given_val is not None and not len(given_val):
            raise DataError(
                "every validation text is also a test text; give a validation set apart from "
                "the test set, or none (one is then split off the training texts)"
            )
    if given_val is None:
        _check_counts(train, labels, need=2)
        train, val = _split_validation(train, labels, options.val_size, options.seed)
    else:
        _check_counts(train, labels, need=1)
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
                trained = _train_full(folder, train, val, labels, options, device, progress, tmp)
            else:
                from rung.tune.setfit import train_setfit

                trained = train_setfit(folder, train, val, labels, options, device, progress, tmp)
        finally:
            progress.done()
        train_seconds = time.perf_counter() - started
        validation = _metrics(val, trained.predict(val.texts), labels, options.seed)
        tested = _metrics(test, trained.predict(test.texts), labels, options.seed) if test else None
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


def options_from(values: dict[str, Any]) -> TuneOptions:
    """TuneOptions from plain values (a CLI, a spec), with a one-line error for bad ones."""
    try:
        return TuneOptions.model_validate(values)
    except ValidationError as e:
        raise SpecError(f"invalid tune options: {validation_message(e)}") from None


# -- checks ---------------------------------------------------------------------------------------


def _label_set(label_set: Sequence[str]) -> tuple[str, ...]:
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


def _split(
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


def _without(split: Split, texts: set[str]) -> tuple[Split, int]:
    kept = [(t, lab) for t, lab in zip(split.texts, split.labels, strict=True) if t not in texts]
    return Split([t for t, _ in kept], [lab for _, lab in kept]), len(split) - len(kept)


def _check_counts(train: Split, labels: Sequence[str], need: int) -> None:
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


def _split_validation(
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


def resolve_base(base: str) -> tuple[str, Path]:
    """(model id for the card, local folder) of the base model. Only encoders fine-tune here."""
    provider, sep, name = base.partition(":")
    if sep and provider.isidentifier() and not Path(base).expanduser().exists():
        if provider != EncoderModel.provider:
            raise ModelLoadError(
                f"rung tune fine-tunes encoder models, and {base} is a {provider} model; use "
                "--base encoder:minilm-l6, encoder:<folder> or encoder:<hub id>"
            )
    else:
        name = base
    path = Path(name).expanduser()
    if path.is_file() and _is_gguf(path):
        raise ModelLoadError(
            f"{path} is a GGUF file (a llama.cpp model), not an encoder; rung tune fine-tunes "
            "encoders: use --base encoder:minilm-l6 or a Hugging Face encoder folder"
        )
    folder = encoder_folder(name)
    model_id = f"encoder:{name}" if not path.is_dir() else f"encoder:{folder}"
    return model_id, folder


def _is_gguf(path: Path) -> bool:
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF" or path.suffix.lower() == ".gguf"
    except OSError:
        return path.suffix.lower() == ".gguf"


def _transformer_dir(folder: Path) -> Path:
    """Where the transformer's config.json is: the folder itself, or the sentence-transformers
    module folder that modules.json names."""
    if (folder / "config.json").is_file():
        return folder
    try:
        modules = json.loads((folder / "modules.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return folder
    for module in modules if isinstance(modules, list) else []:
        if str(module.get("type", "")).endswith("Transformer"):
            return folder / str(module.get("path", ""))
    return folder


def check_base(model_id: str, folder: Path, options: TuneOptions) -> None:
    config_path = _transformer_dir(folder) / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(
            f"{model_id}: cannot read {config_path} ({e}); point --base at a Hugging Face or "
            "sentence-transformers encoder folder"
        ) from e
    architectures = [str(a) for a in config.get("architectures") or []]
    if any(a.endswith(_DECODERS) for a in architectures) or config.get("is_decoder"):
        raise ModelLoadError(
            f"{model_id} is a text generator ({', '.join(architectures)}), not an encoder; rung "
            "tune fine-tunes encoders such as encoder:minilm-l6 (fine-tune generators with LoRA)"
        )
    limit = config.get("max_position_embeddings")
    if isinstance(limit, int) and options.max_seq_length > limit:
        raise ConfigurationError(
            f"--max-seq-length {options.max_seq_length} is longer than {model_id} can read "
            f"({limit} positions); lower it to {limit} or less"
        )
    if options.method == "setfit" and not (folder / "config.json").is_file():
        return
    if options.method == "full" and not (folder / "config.json").is_file():
        raise ModelLoadError(
            f"{folder} keeps its transformer in a sub-folder ({config_path.parent.name}); point "
            f"--base at encoder:{config_path.parent} for a full fine-tune"
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


# -- evaluation -----------------------------------------------------------------------------------


def _metrics(split: Split, pred: list[str], labels: Sequence[str], seed: int) -> dict[str, Any]:
    acc = bootstrap_ci(split.labels, pred, labels, "accuracy", seed=seed)
    f1 = bootstrap_ci(split.labels, pred, labels, "macro_f1", seed=seed)
    return {
        "accuracy": acc.value,
        "accuracy_ci": list(acc.ci95),
        "macro_f1": f1.value,
        "macro_f1_ci": list(f1.ci95),
        "n": len(split),
    }


def score(split: Split, pred: list[str], labels: Sequence[str]) -> dict[str, float]:
    from rung.tasks.metrics import accuracy, macro_f1

    return {
        "accuracy": accuracy(split.labels, pred, labels),
        "macro_f1": macro_f1(split.labels, pred, labels),
    }


class EarlyStopping:
    """Keeps the best validation score, saves the weights it came with, and says when
    ``patience`` evaluations in a row brought nothing better."""

    def __init__(
        self, options: TuneOptions, save: Callable[[], None], progress: TuneProgress
    ) -> None:
        self.metric = options.metric
        self.patience = options.patience
        self.save = save
        self.progress = progress
        self.best = -math.inf
        self.best_epoch = 0.0
        self.stale = 0
        self.history: list[dict[str, Any]] = []
        self.last_was_best = False

    def update(self, epoch: float, step: int, loss: float, scores: dict[str, float]) -> bool:
        """Record one evaluation; True when training should stop."""
        value = scores[self.metric]
        self.history.append(
            {"epoch": epoch, "step": step, "train_loss": round(loss, 5), "validation": scores}
        )
        self.progress.evaluated(epoch, value)
        self.last_was_best = value > self.best
        if self.last_was_best:
            self.best, self.best_epoch, self.stale = value, epoch, 0
            self.save()
            return False
        self.stale += 1
        return 0 < self.patience <= self.stale


# -- the full fine-tune ---------------------------------------------------------------------------


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers reports the new head's weights as missing ("newly initialized"): that is
    the point of fine-tuning, not news for the user. Its download bars go too."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def _load_full(folder: Path, labels: Sequence[str], seed: int) -> tuple[Any, Any]:
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
    except ImportError as e:
        raise MissingDependencyError("rung tune", INSTALL) from e
    torch.manual_seed(seed)  # the new head's initial weights
    with _quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder),
                num_labels=len(labels),
                id2label=dict(enumerate(labels)),
                label2id={lab: i for i, lab in enumerate(labels)},
                problem_type="single_label_classification",
                ignore_mismatched_sizes=True,
                local_files_only=True,
            )
        except Exception as e:  # the boundary: any failure to build the model is a load error
            raise ModelLoadError(
                f"cannot load {folder} as a sequence classifier: {type(e).__name__}: {e}; "
                "point --base at a Hugging Face encoder folder (BERT, MiniLM, RoBERTa, ...)"
            ) from e
    return tokenizer, model


def _collate(
    encoded: dict[str, list[list[int]]], idx: list[int], pad_id: int, device: str
) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest text (dynamic padding, right side)."""
    import torch

    width = max(len(encoded["input_ids"][i]) for i in idx)
    batch: dict[str, torch.Tensor] = {}
    for key, fill in (("input_ids", pad_id), ("attention_mask", 0), ("token_type_ids", 0)):
        if key in encoded:
            rows = [encoded[key][i] + [fill] * (width - len(encoded[key][i])) for i in idx]
            batch[key] = torch.tensor(rows, dtype=torch.long, device=device)
    return batch


def optimizer_for(
    model: Any, options: TuneOptions, total_steps: int, fast: str | None = None
) -> tuple[Any, Any]:
    """AdamW without decay on biases and norms, and a linear warmup then decay to zero. Weights
    whose name starts with ``fast`` (the head) learn ``head_speed`` times faster."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    groups: dict[tuple[bool, bool], list[Any]] = defaultdict(list)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        plain = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        groups[(plain, fast is not None and name.startswith(fast))].append(param)
    optimizer = torch.optim.AdamW(
        [
            {
                "params": params,
                "weight_decay": 0.0 if plain else options.weight_decay,
                "lr": options.lr * (options.head_speed if is_head else 1.0),
            }
            for (plain, is_head), params in sorted(groups.items())
        ],
        lr=options.lr,
    )
    warmup = int(options.warmup_ratio * total_steps)
    return optimizer, get_linear_schedule_with_warmup(optimizer, warmup, total_steps)


@dataclass
class _Net:
    """What the training loop needs of either head: the module whose weights train, its
    logits for a padded batch, labels for texts with the current weights, and the folder
    writer. ``fast`` names the new head's weights."""

    module: Any
    tokenizer: Any
    logits: Callable[[dict[str, Any]], Any]
    predict: Callable[[Sequence[str]], list[str]]
    save: Callable[[Path], None]
    fast: str | None
    card_extra: dict[str, Any]


def _sequence_net(
    folder: Path, labels: Sequence[str], options: TuneOptions, device: str, train: Split
) -> _Net:
    """A transformers sequence classifier: the pooler over the first token, then a new head."""
    tokenizer, model = _load_full(folder, labels, options.seed)
    model.to(device)
    length = options.max_seq_length

    def predict(texts: Sequence[str]) -> list[str]:
        was_training = model.training
        model.eval()
        probs, _ = sequence_probabilities(model, tokenizer, texts, length, 2 * options.batch_size)
        model.train(was_training)
        return [labels[k] for k in probs.argmax(axis=1).tolist()]

    def save(target: Path) -> None:
        # Tools that read the folder alone (transformers' pipeline, ONNX export) then
        # truncate at the length the model was trained with.
        tokenizer.model_max_length = length
        model.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))

    return _Net(
        module=model,
        tokenizer=tokenizer,
        logits=lambda batch: model(**batch).logits,
        predict=predict,
        save=save,
        fast=None,
        card_extra={"head": "sequence", "pooling": "cls"},
    )


def _mean_net(
    folder: Path, labels: Sequence[str], options: TuneOptions, device: str, train: Split
) -> _Net:
    """The transformer, the mean of its token states over the real tokens, and a new linear
    head, trained together; saved as a sentence-transformers folder (transformer, mean pooling)
    and ``head.safetensors``, which the encoder rung reads as it reads a setfit folder."""
    try:
        import numpy as np
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise MissingDependencyError("rung tune", INSTALL) from e

    with _quiet_transformers():
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            encoder = AutoModel.from_pretrained(str(folder), local_files_only=True)
        except Exception as e:  # the boundary: any failure to build the model is a load error
            raise ModelLoadError(
                f"cannot load {folder} as an encoder: {type(e).__name__}: {e}; point --base at a "
                "Hugging Face or sentence-transformers encoder folder (BERT, MiniLM, RoBERTa, ...)"
            ) from e
    config = encoder.config
    dimension = int(config.hidden_size)
    dropout = getattr(config, "hidden_dropout_prob", None)
    torch.manual_seed(options.seed)  # the new head's initial weights

    class MeanPoolClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = encoder
            self.dropout = torch.nn.Dropout(dropout if isinstance(dropout, float) else 0.1)
            self.head = torch.nn.Linear(dimension, len(labels))

        def pooled(self, batch: dict[str, Any]) -> Any:
            return mean_pool(self.encoder(**batch).last_hidden_state, batch["attention_mask"])

        def forward(self, batch: dict[str, Any]) -> Any:
            return self.head(self.dropout(self.pooled(batch)))

    net = MeanPoolClassifier().to(device)
    length = options.max_seq_length

    def embed(texts: Sequence[str]) -> Any:
        """Mean-pooled embeddings in float64, in eval mode (no dropout)."""
        was_training = net.training
        net.eval()
        pooled: list[Any] = []
        with torch.inference_mode():
            for start in range(0, len(texts), 2 * options.batch_size):
                batch = tokenizer(
                    list(texts[start : start + 2 * options.batch_size]),
                    padding=True,
                    truncation=True,
                    max_length=length,
                    return_tensors="pt",
                ).to(device)
                pooled.append(net.pooled(dict(batch)).double().cpu().numpy())
        net.train(was_training)
        return np.concatenate(pooled) if pooled else np.zeros((0, dimension))

    if options.head_init == "probe":
        _probe_head(net.head, embed(train.texts), train, labels, options.seed)

    def linear_arrays() -> tuple[Any, Any]:
        coef = net.head.weight.detach().double().cpu().numpy()
        intercept = net.head.bias.detach().double().cpu().numpy()
        return coef, intercept

    def predict(texts: Sequence[str]) -> list[str]:
        # as the encoder rung classifies the saved folder: float32 embeddings, float64 head
        if not texts:
            return []
        probs = head_probabilities(embed(texts), *linear_arrays())
        return [labels[k] for k in probs.argmax(axis=1).tolist()]

    def save(target: Path) -> None:
        from safetensors.numpy import save_file

        tokenizer.model_max_length = length
        encoder.save_pretrained(str(target))
        tokenizer.save_pretrained(str(target))
        _write_sentence_transformer(target, dimension, length)
        coef, intercept = linear_arrays()
        save_file(
            {"coef": coef, "intercept": intercept},
            str(target / HEAD_FILE),
            metadata={"labels": json.dumps(list(labels)), "normalize": "false"},
        )

    return _Net(
        module=net,
        tokenizer=tokenizer,
        logits=net,
        predict=predict,
        save=save,
        fast="head.",
        card_extra={"head": "linear", "pooling": "mean", "normalize": False},
    )


def head_arrays(
    head: Any, labels: Sequence[str]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """A fitted scikit-learn LogisticRegression as softmax rows in label order. A two-class
    model holds one row w (p = sigmoid(w·x + b)); the rows -w/2 and +w/2 give the same
    probabilities under softmax."""
    import numpy as np

    classes = [str(c) for c in head.classes_]
    coef = np.asarray(head.coef_, dtype=np.float64)
    intercept = np.asarray(head.intercept_, dtype=np.float64)
    if len(classes) == 2:
        coef = np.stack([-coef[0] / 2, coef[0] / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    order = [classes.index(lab) for lab in labels]
    return np.ascontiguousarray(coef[order]), np.ascontiguousarray(intercept[order])


def _probe_head(head: Any, features: Any, train: Split, labels: Sequence[str], seed: int) -> None:
    """Set the linear head to a logistic regression fitted on the frozen encoder's embeddings
    of the training texts (scikit-learn's default regularization, C=1)."""
    import torch
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(max_iter=2000, random_state=seed)
    model.fit(features, train.labels)
    coef, intercept = head_arrays(model, labels)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(coef).to(head.weight))
        head.bias.copy_(torch.from_numpy(intercept).to(head.bias))


def _write_sentence_transformer(folder: Path, dimension: int, max_seq_length: int) -> None:
    """The files that make a transformer folder a sentence-transformers model with mean
    pooling (the format every sentence-transformers release since 2.0 reads)."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    pooling = {
        "word_embedding_dimension": dimension,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
        "pooling_mode_weightedmean_tokens": False,
        "pooling_mode_lasttoken": False,
        "include_prompt": True,
    }
    (folder / "1_Pooling").mkdir(exist_ok=True)
    for path, value in (
        (folder / "modules.json", modules),
        (folder / "1_Pooling" / "config.json", pooling),
        (folder / "sentence_bert_config.json", {"max_seq_length": max_seq_length}),
    ):
        path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def _train_full(
    folder: Path,
    train: Split,
    val: Split,
    labels: Sequence[str],
    options: TuneOptions,
    device: str,
    progress: TuneProgress,
    workdir: Path,
) -> Trained:
    import torch
    from safetensors.torch import load_model, save_model

    build = _mean_net if options.pooling == "mean" else _sequence_net
    net = build(folder, labels, options, device, train)
    model, tokenizer = net.module, net.tokenizer
    encoded = tokenizer(train.texts, truncation=True, max_length=options.max_seq_length)
    encoded = {k: list(v) for k, v in encoded.items()}
    index = {lab: i for i, lab in enumerate(labels)}
    targets = [index[lab] for lab in train.labels]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    size = options.batch_size
    per_epoch = math.ceil(len(train) / size)
    total = per_epoch * options.epochs
    optimizer, scheduler = optimizer_for(model, options, total, fast=net.fast)
    generator = torch.Generator().manual_seed(options.seed)
    checkpoint = workdir / "checkpoint.safetensors"

    stopper = EarlyStopping(options, lambda: save_model(model, str(checkpoint)), progress)
    progress.start(total)
    step = 0
    losses: list[float] = []
    stop = False
    for _ in range(options.epochs):
        order = torch.randperm(len(train), generator=generator).tolist()
        model.train()
        for b in range(per_epoch):
            idx = order[b * size : (b + 1) * size]
            batch = _collate(encoded, idx, pad_id, device)
            gold = torch.tensor([targets[i] for i in idx], dtype=torch.long, device=device)
            loss = torch.nn.functional.cross_entropy(net.logits(batch), gold)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), options.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.item()))
            progress.step(losses[-1])
            due = step % options.eval_steps == 0 if options.eval_steps else b == per_epoch - 1
            if due or step == total:
                scores = score(val, net.predict(val.texts), labels)
                mean_loss = sum(losses) / len(losses)
                losses = []
                stop = stopper.update(round(step / per_epoch, 2), step, mean_loss, scores)
                if stop:
                    break
        if stop:
            break
    if not stopper.last_was_best:
        load_model(model, str(checkpoint))
    model.eval()
    return Trained(
        predict=net.predict,
        save=net.save,
        best_epoch=stopper.best_epoch,
        history=stopper.history,
        card_extra=net.card_extra,
    )
