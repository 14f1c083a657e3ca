"""LoRA fine-tuning of a small causal LM for generative tasks (summaries, answers, rewrites).

``tune_lora`` trains low-rank adapters (peft) on the attention projections of a causal LM, on
(prompt, completion) pairs, and writes a folder that is a rung: ``transformers:<folder>`` loads
the base, merges the adapter and generates (see rung.models.transformers).

How an example becomes a training sequence: the prompt is rendered exactly as the transformers
backend renders it when serving (the base's chat template, else its plain format), and the
completion is the text the template writes after it for an assistant turn (the answer and its
end-of-turn token). The loss is taken on the completion's tokens only (the prompt's labels are
-100), so the model learns to answer, not to reproduce the inputs. Examples longer than
``max_length`` tokens are cut in the last user message (the input text), never in the template's
markup; the completion keeps at least half the budget.

The folder (written beside ``out`` and renamed into place when complete):

- ``adapter_config.json`` + ``adapter_model.safetensors`` — the peft adapter (a few MB);
- tokenizer files (``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``);
- ``merged/`` — the full merged weights (safetensors), only with ``merge=True``: the base is
  usually on disk already (the bundled GGUF, the hub cache), so the adapter alone is the
  default, a hundredth of the size; ``merged/`` makes the folder stand alone on a machine
  without the base, and loads faster;
- ``model-<type>.gguf`` — with ``gguf=``: the merged weights for llama.cpp (rung.tune.gguf_export);
- ``rung.json`` (machine-readable card) and ``README.md`` (model card).

Determinism: one seed sets the adapters' initial weights, the dropout masks and the order of
the examples (torch's global RNG state is restored afterwards); the same data, options, seed and
thread count give the same losses and weights on the same machine.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
import random
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    did_you_mean,
    validation_message,
)
from rung.models.base import ChatMessage
from rung.models.registry import providers
from rung.models.transformers import (
    ADAPTER_CONFIG,
    ALIASES,
    MERGED_DIR,
    TUNE_INSTALL,
    ModelSource,
    TransformersModel,
    TransformersOptions,
    render_prompt,
)
from rung.tasks.data import detect_format, jsonl_records, read_text
from rung.tune.card import check_out, file_sha256, publish, staging

if TYPE_CHECKING:
    from rung.tune.gguf_export import GgufExport, GgufType

__all__ = [
    "DEFAULT_BASE",
    "DEFAULT_TARGETS",
    "Fitted",
    "LoraOptions",
    "LoraProgress",
    "LoraResult",
    "NullLoraProgress",
    "PairData",
    "TrainExample",
    "fit_lora",
    "mean_loss",
    "options_from",
    "read_pairs",
    "render_readme",
    "split_validation",
    "tune_lora",
]

DEFAULT_BASE = "transformers:smollm2-135m-instruct"
#: the attention projections of llama-like models (Llama, SmolLM, Mistral, Qwen, Gemma)
DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
#: training examples whose loss is measured before and after training, for the card
LOSS_SAMPLE = 64
CARD_FILE = "rung.json"

PromptLike = str | Sequence[ChatMessage | Mapping[str, str]]


class LoraOptions(BaseModel):
    """Hyperparameters of a LoRA run. Defaults suit a ~100M-2B model and a few hundred examples."""

    model_config = ConfigDict(extra="forbid")

    rank: int = Field(default=8, ge=1, le=1024, description="LoRA rank r of each adapter.")
    alpha: int = Field(
        default=16, ge=1, description="LoRA alpha: the adapters' output is scaled by alpha/r."
    )
    dropout: float = Field(default=0.05, ge=0.0, lt=1.0, description="Dropout on the adapters.")
    target_modules: list[str] | Literal["all-linear"] = Field(
        default_factory=lambda: list(DEFAULT_TARGETS),
        description="Module names that get adapters (q_proj, k_proj, v_proj, o_proj by default), "
        "or 'all-linear' for every linear layer but the output head.",
    )
    epochs: int = Field(default=1, ge=1, description="Passes over the training examples.")
    max_steps: int | None = Field(
        default=None, ge=1, description="Optimizer steps to take; overrides epochs when set."
    )
    lr: float = Field(default=2e-4, gt=0, le=1.0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.0, ge=0.0, description="AdamW weight decay.")
    warmup_steps: int = Field(
        default=0, ge=0, description="Steps of linear warmup; then linear decay to zero."
    )
    batch_size: int = Field(default=4, ge=1, description="Examples per optimizer step.")
    max_length: int = Field(
        default=512, ge=16, description="Tokens per example (prompt + completion) at most."
    )
    seed: int = Field(default=0, description="Seed of the adapters' init, dropout and order.")
    eval_every: int | None = Field(
        default=None,
        ge=1,
        description="Score the validation examples every N steps (default: after each epoch).",
    )
    patience: int = Field(
        default=2,
        ge=1,
        description="Stop after this many validation scores without a lower loss; the "
        "adapter of the lowest validation loss is kept.",
    )
    merge: bool = Field(
        default=False, description="Also write merged/: the full merged weights (safetensors)."
    )
    device: str = Field(
        default="auto",
        pattern=r"^(auto|cpu|mps|cuda(:\d+)?)$",
        description="auto (cuda when torch sees a GPU, else cpu), cpu, cuda, cuda:N or mps.",
    )
    threads: int | None = Field(
        default=None, ge=1, description="CPU threads for training (default: PyTorch's choice)."
    )

    @field_validator("target_modules")
    @classmethod
    def _targets(cls, value: list[str] | str) -> list[str] | str:
        if isinstance(value, list) and not [v for v in value if v.strip()]:
            raise ValueError("name at least one module, or 'all-linear'")
        return value


@dataclass(frozen=True)
class TrainExample:
    """One training pair: the prompt as chat messages, and the answer the model should give."""

    messages: tuple[ChatMessage, ...]
    completion: str

    @classmethod
    def of(cls, prompt: PromptLike, completion: str, system: str | None = None) -> TrainExample:
        """From a prompt text (one user turn) or a list of messages (ChatMessage or
        ``{"role": ..., "content": ...}``); ``system`` is put first when the prompt has none."""
        if isinstance(prompt, str):
            messages: list[ChatMessage] = [ChatMessage("user", prompt)]
        else:
            messages = [_message(m) for m in prompt]
        if not messages:
            raise DataError("a training prompt holds no messages; give a text or messages")
        if system and messages[0].role != "system":
            messages.insert(0, ChatMessage("system", system))
        return cls(tuple(messages), completion)


def _message(m: ChatMessage | Mapping[str, str]) -> ChatMessage:
    if isinstance(m, ChatMessage):
        return m
    role, content = m.get("role"), m.get("content")
    if role not in ("system", "user", "assistant") or not isinstance(content, str):
        raise DataError(
            f"a message must be {{'role': system|user|assistant, 'content': text}}, got {m!r}"
        )
    return ChatMessage(role, content)  # type: ignore[arg-type]


class LoraProgress(Protocol):
    """Callbacks from ``tune_lora``, called in the thread that trains."""

    def phase(self, text: str) -> None:
        """A stage begins (loading the base, saving, exporting GGUF)."""

    def start(self, total_steps: int) -> None:
        """Training begins; ``total_steps`` optimizer steps are planned (early stopping may end
        the run sooner)."""

    def step(self, loss: float) -> None:
        """One optimizer step was taken; ``loss`` is that batch's loss on the completions."""

    def evaluated(self, epoch: float, val_loss: float) -> None:
        """The validation examples were scored after ``epoch`` epochs."""

    def done(self) -> None:
        """Training ended (finished, stopped early or failed)."""


class NullLoraProgress:
    """Reports nothing."""

    def phase(self, text: str) -> None:
        pass

    def start(self, total_steps: int) -> None:
        pass

    def step(self, loss: float) -> None:
        pass

    def evaluated(self, epoch: float, val_loss: float) -> None:
        pass

    def done(self) -> None:
        pass


@dataclass
class LoraResult:
    """What a run did. Losses are mean cross-entropy per completion token (nats)."""

    out: Path
    card: dict[str, Any]
    steps: int
    epochs: float
    #: measured (no dropout) on up to LOSS_SAMPLE training examples, before and after training
    train_loss_before: float
    train_loss_after: float
    #: on the validation examples; None without them. ``validation_loss`` is the kept adapter's.
    validation_loss_before: float | None
    validation_loss: float | None
    stopped_early: bool
    train_seconds: float
    gguf: Path | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


# -- reading data -------------------------------------------------------------------------------


@dataclass
class PairData:
    """The pairs read from a file, and how many rows were skipped for an empty field."""

    path: Path
    examples: list[TrainExample]
    skipped: int

    def info(self, input_field: str, output_field: str) -> dict[str, Any]:
        """The card's ``data`` facts about the file."""
        return {
            "path": str(self.path),
            "sha256": file_sha256(self.path),
            "input": input_field,
            "output": output_field,
            "rows_skipped": self.skipped,
        }


def read_pairs(
    path: Path,
    *,
    input_field: str = "prompt",
    output_field: str = "completion",
    fmt: Literal["jsonl", "csv", "tsv"] | None = None,
    system: str | None = None,
    encoding: str = "auto",
) -> PairData:
    """(prompt, completion) pairs from a JSONL, CSV or TSV file. In JSONL the input field may
    hold a text or a list of chat messages; rows with an empty input or output are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"no data file at {path}; give a JSONL, CSV or TSV file of prompt/completion pairs"
        )
    if fmt is None:
        detected = detect_format(path)
        if detected not in ("jsonl", "csv", "tsv"):
            raise DataError(
                f"{path}: tune-lm reads JSONL, CSV or TSV (one prompt and one completion per "
                "row); pass --format if the extension does not say which"
            )
        fmt = detected
    content = read_text(path, encoding)
    rows = (
        _jsonl_rows(content, path, input_field, output_field)
        if fmt == "jsonl"
        else _delimited_rows(
            content, path, "," if fmt == "csv" else "\t", input_field, output_field
        )
    )
    examples: list[TrainExample] = []
    skipped = 0
    for prompt, completion in rows:
        if not completion.strip() or (isinstance(prompt, str) and not prompt.strip()):
            skipped += 1
            continue
        examples.append(TrainExample.of(prompt, completion, system))
    if not examples:
        raise DataError(
            f"{path} holds no training pairs"
            + (
                f" ({skipped} rows have an empty {input_field!r} or {output_field!r})"
                if skipped
                else ""
            )
            + f"; give a file whose rows have a {input_field!r} and an {output_field!r} value"
        )
    return PairData(path=path, examples=examples, skipped=skipped)


def _missing_field(path: Path, where: str, name: str, flag: str, available: list[str]) -> DataError:
    return DataError(
        f"{path}{where}: no field {name!r}{did_you_mean(name, available)}; it has "
        f"{', '.join(available) or 'no fields'}: name the right one with {flag}"
    )


def _jsonl_rows(
    content: str, path: Path, input_field: str, output_field: str
) -> list[tuple[PromptLike, str]]:
    rows: list[tuple[PromptLike, str]] = []
    for lineno, rec in jsonl_records(content, path):
        for name, flag in ((input_field, "--input"), (output_field, "--output")):
            if name not in rec:
                raise _missing_field(path, f":{lineno}", name, flag, sorted(rec))
        prompt, completion = rec[input_field], rec[output_field]
        if not isinstance(completion, str):
            completion = "" if completion is None else str(completion)
        if isinstance(prompt, list):
            try:
                rows.append(([_message(m) for m in prompt], completion))
            except (DataError, AttributeError) as e:
                raise DataError(
                    f"{path}:{lineno}: {input_field!r} is a list but not of chat messages "
                    f"({e}); give a text or [{{'role': 'user', 'content': ...}}, ...]"
                ) from None
        else:
            rows.append(("" if prompt is None else str(prompt), completion))
    return rows


def _delimited_rows(
    content: str, path: Path, delimiter: str, input_field: str, output_field: str
) -> list[tuple[PromptLike, str]]:
    reader = csv.DictReader(io.StringIO(content), delimiter=delimiter)
    columns = list(reader.fieldnames or [])
    if not columns:
        raise DataError(f"{path} is empty (no header row); add a header naming the columns")
    for name, flag in ((input_field, "--input"), (output_field, "--output")):
        if name not in columns:
            raise _missing_field(path, "", name, flag, columns)
    return [(rec.get(input_field) or "", rec.get(output_field) or "") for rec in reader]


def split_validation(
    examples: Sequence[TrainExample], size: float, seed: int
) -> tuple[list[TrainExample], list[TrainExample]]:
    """A seeded random validation split: ``size`` below 1 is a share, from 1 up a count. At
    least one example stays for training."""
    n = len(examples)
    count = round(n * size) if size < 1 else int(size)
    count = max(0, min(count, n - 1))
    order = list(range(n))
    random.Random(seed).shuffle(order)
    val = set(order[:count])
    return (
        [e for i, e in enumerate(examples) if i not in val],
        [e for i, e in enumerate(examples) if i in val],
    )


# -- encoding -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    ids: list[int]
    n_prompt: int  # the first n_prompt tokens are masked out of the loss
    truncated: bool


def _completion_text(tok: Any, example: TrainExample, prompt_text: str, prefix: str) -> str:
    """What follows the prompt in a rendered conversation: the answer and the template's
    end-of-turn markup. Without a chat template (or when the template renders the finished
    turn differently), the answer and the end-of-sequence token."""
    fallback = prefix + example.completion + (tok.eos_token or "")
    if not getattr(tok, "chat_template", None):
        return fallback
    from jinja2 import TemplateError

    turns = [{"role": m.role, "content": m.content} for m in example.messages]
    answer = {"role": "assistant", "content": example.completion}
    candidates = [turns]
    if len(turns) >= 2 and turns[0]["role"] == "system":  # as render_prompt folds it
        first = {
            "role": turns[1]["role"],
            "content": f"{turns[0]['content']}\n\n{turns[1]['content']}",
        }
        candidates.append([first, *turns[2:]])
    for candidate in candidates:
        try:
            full = tok.apply_chat_template([*candidate, answer], tokenize=False)
        except TemplateError:
            continue
        if isinstance(full, str) and full.startswith(prompt_text) and len(full) > len(prompt_text):
            return full[len(prompt_text) :]
    return fallback


def _encode(tok: Any, example: TrainExample, max_length: int, model_id: str) -> _Encoded:
    prompt = render_prompt(tok, example.messages, model_id)
    tail = _completion_text(tok, example, prompt.text, prompt.prefix)
    completion = list(tok(tail, add_special_tokens=False)["input_ids"])
    prompt_ids = prompt.ids
    if len(prompt_ids) + len(completion) <= max_length:
        return _Encoded(prompt_ids + completion, len(prompt_ids), False)
    completion = completion[: max(max_length - len(prompt_ids), max_length // 2)]
    budget = max_length - len(completion)
    prompt_ids = _shorten_prompt(tok, example, budget, model_id) or prompt_ids[-budget:]
    return _Encoded(prompt_ids + completion, len(prompt_ids), True)


def _shorten_prompt(
    tok: Any, example: TrainExample, budget: int, model_id: str
) -> list[int] | None:
    """The prompt's ids with its last user message cut at the end until it fits ``budget``
    tokens; None when cutting that message is not enough."""
    messages = list(example.messages)
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    if not users:
        return None
    at = users[-1]
    content_ids = list(tok(messages[at].content, add_special_tokens=False)["input_ids"])
    keep = len(content_ids)
    for _ in range(4):  # decoding then re-encoding a cut text can shift a token or two
        ids = render_prompt(tok, messages, model_id).ids
        over = len(ids) - budget
        if over <= 0:
            return ids
        keep -= over + 2
        if keep <= 0:
            return None
        messages[at] = ChatMessage("user", tok.decode(content_ids[:keep]))
    ids = render_prompt(tok, messages, model_id).ids
    return ids if len(ids) <= budget else None


def _collate(batch: Sequence[_Encoded], pad_id: int, device: str) -> dict[str, Any]:
    """Right-padded ids, attention mask, and labels that are -100 on the prompt and padding."""
    import torch

    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.ids)
        ids[row, :n] = torch.tensor(e.ids)
        mask[row, :n] = 1
        labels[row, e.n_prompt : n] = torch.tensor(e.ids[e.n_prompt :])
    return {
        "input_ids": ids.to(device),
        "attention_mask": mask.to(device),
        "labels": labels.to(device),
    }


# -- training -----------------------------------------------------------------------------------


def mean_loss(
    model: Any, encoded: Sequence[_Encoded], batch_size: int, pad_id: int, device: str
) -> float:
    """Mean cross-entropy per completion token over ``encoded``, without dropout."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                batch = _collate(encoded[start : start + batch_size], pad_id, device)
                logits = model(
                    input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
                ).logits[:, :-1]
                labels = batch["labels"][:, 1:]
                total += float(
                    torch.nn.functional.cross_entropy(
                        logits.float().reshape(-1, logits.shape[-1]),
                        labels.reshape(-1),
                        ignore_index=-100,
                        reduction="sum",
                    )
                )
                count += int((labels != -100).sum())
    finally:
        model.train(was_training)
    return total / max(count, 1)


@dataclass
class _Trained:
    steps: int
    epochs: float
    stopped_early: bool
    validation_loss: float | None
    train_loss: float
    history: list[dict[str, Any]]


def _train(
    model: Any,
    train: list[_Encoded],
    val: list[_Encoded],
    options: LoraOptions,
    pad_id: int,
    device: str,
    progress: LoraProgress,
) -> _Trained:
    import torch
    from transformers import get_linear_schedule_with_warmup

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
    per_epoch = math.ceil(len(train) / options.batch_size)
    total = options.max_steps or per_epoch * options.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, min(options.warmup_steps, total), total)
    order_rng = torch.Generator().manual_seed(options.seed)
    best_loss: float | None = None
    best_state: dict[str, Any] | None = None
    last_eval_step = -1
    bad = 0
    stopped = False
    losses: list[float] = []
    history: list[dict[str, Any]] = []
    step = 0

    def evaluate() -> bool:
        """Score the validation examples; True when training should stop."""
        nonlocal best_loss, best_state, bad, last_eval_step
        last_eval_step = step
        loss = mean_loss(model, val, options.batch_size, pad_id, device)
        epoch = round(step / per_epoch, 3)
        history.append({"step": step, "epoch": epoch, "validation_loss": round(loss, 5)})
        progress.evaluated(epoch, loss)
        if best_loss is None or loss < best_loss - 1e-4:
            best_loss, bad = loss, 0
            best_state = {
                n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad
            }
            return False
        bad += 1
        return bad >= options.patience

    model.train()
    progress.start(total)
    while step < total and not stopped:
        order = torch.randperm(len(train), generator=order_rng).tolist()
        for start in range(0, len(order), options.batch_size):
            batch = _collate(
                [train[i] for i in order[start : start + options.batch_size]], pad_id, device
            )
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            value = float(loss.detach())
            losses.append(value)
            progress.step(value)
            if val and options.eval_every and step % options.eval_every == 0 and evaluate():
                stopped = True
                break
            if step >= total:
                break
        if val and not stopped and not options.eval_every and step % per_epoch == 0:
            stopped = evaluate()
    if val and last_eval_step != step:
        evaluate()
    if best_state is not None:
        with torch.no_grad():
            for n, p in model.named_parameters():
                if n in best_state:
                    p.copy_(best_state[n])
    tail = losses[-min(per_epoch, len(losses)) :]
    return _Trained(
        steps=step,
        epochs=round(step / per_epoch, 3),
        stopped_early=stopped and step < total,
        validation_loss=best_loss,
        train_loss=sum(tail) / len(tail),
        history=history,
    )


@dataclass
class Fitted:
    """A trained peft model (the base with its adapters) and the run's figures."""

    model: Any
    trained: _Trained
    loss_before: float
    loss_after: float
    val_loss_before: float | None
    seconds: float


def fit_lora(
    model: Any,
    train: list[_Encoded],
    val: list[_Encoded],
    options: LoraOptions,
    pad_id: int,
    device: str,
    progress: LoraProgress,
    model_id: str,
) -> Fitted:
    """Put LoRA adapters on ``model`` (in place, as peft does) and train them: the seeded part
    of a run, with the losses before and after on up to LOSS_SAMPLE training examples."""
    import peft
    import torch

    config = peft.LoraConfig(
        r=options.rank,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    sample = train[:LOSS_SAMPLE]
    started = time.perf_counter()
    with _torch_threads(options.threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        try:
            with _quiet_peft():
                peft_model = peft.get_peft_model(model, config)
        except ValueError as e:
            raise ConfigurationError(
                f"cannot put LoRA adapters on {model_id}: {e}; set target_modules to module "
                "names of this model (e.g. q_proj,v_proj) or 'all-linear'"
            ) from e
        progress.phase("measuring the loss before training")
        before = mean_loss(peft_model, sample, options.batch_size, pad_id, device)
        val_before = mean_loss(peft_model, val, options.batch_size, pad_id, device) if val else None
        try:
            trained = _train(peft_model, train, val, options, pad_id, device, progress)
        finally:
            progress.done()
        after = mean_loss(peft_model, sample, options.batch_size, pad_id, device)
    return Fitted(peft_model, trained, before, after, val_before, time.perf_counter() - started)


# -- the run ------------------------------------------------------------------------------------


def _base_model(base: str, options: LoraOptions) -> TransformersModel:
    """The transformers backend for ``base``, checked (file there, hub cached, a causal LM)."""
    provider, sep, name = base.partition(":")
    if sep and provider == TransformersModel.provider:
        base = name
    elif sep and provider in providers():  # another backend's model id
        raise ConfigurationError(
            f"LoRA tuning runs through transformers, not {provider}: pass --base "
            f"transformers:<hub id | folder | .gguf file> (e.g. {DEFAULT_BASE})"
        )
    model = TransformersModel(
        base, TransformersOptions(device=options.device, dtype="auto", threads=options.threads)
    )
    model.check()
    if model.source().kind == "adapter":
        raise ConfigurationError(
            f"{base} is a LoRA adapter folder, not a base model; tune its base (named in its "
            "rung.json) again, or merge it first (it has merged/ when trained with --merge) "
            "and tune that folder"
        )
    return model


def _base_id(backend: TransformersModel) -> str:
    """The base as the card names it: the alias or hub id, or the absolute path of a file or
    folder (a relative one would mean another place when the folder is used elsewhere)."""
    source = backend.source()
    if source.kind in ("gguf", "folder") and backend.name not in ALIASES:
        return f"transformers:{Path(str(source.path)).resolve()}"
    return f"transformers:{backend.name}"


def _as_examples(
    items: Sequence[TrainExample | tuple[PromptLike, str]], what: str
) -> list[TrainExample]:
    out: list[TrainExample] = []
    for item in items:
        if isinstance(item, TrainExample):
            out.append(item)
        else:
            prompt, completion = item
            out.append(TrainExample.of(prompt, completion))
    if not out and what == "training":
        raise DataError("no training examples; give at least one (prompt, completion) pair")
    return out


def _base_path(source: ModelSource) -> str:
    """The base as the adapter_config.json of peft names it: what from_pretrained reads."""
    if source.kind == "hub":
        return str(source.repo)
    return str(Path(str(source.path)).resolve())


def tune_lora(
    base: str,
    examples: Sequence[TrainExample | tuple[PromptLike, str]],
    out: Path,
    options: LoraOptions | None = None,
    *,
    val: Sequence[TrainExample | tuple[PromptLike, str]] | None = None,
    data_info: dict[str, Any] | None = None,
    gguf: GgufType | None = None,
    progress: LoraProgress | None = None,
    force: bool = False,
) -> LoraResult:
    """Train LoRA adapters on ``base`` (``transformers:<alias | hub id | folder | .gguf>``, or
    the same without the prefix) and write the model folder ``out``. ``val`` enables early
    stopping on the validation loss; ``gguf`` ("f16", "f32", "q8_0") also writes the merged
    weights as a GGUF file for llama.cpp. Everything the user can get wrong is checked before
    the base is loaded."""
    options = options or LoraOptions()
    train_set = _as_examples(examples, "training")
    val_set = _as_examples(val or [], "validation")
    out = Path(out)
    check_out(out, force)
    backend = _base_model(base, options)
    source = backend.source()
    base_id = _base_id(backend)
    base_gguf: Path | None = None
    if gguf is not None:
        from rung.tune.gguf_export import GGUF_TYPES, check_exportable

        if gguf not in GGUF_TYPES:
            raise ConfigurationError(
                f"unknown GGUF type {gguf!r}; use one of {', '.join(GGUF_TYPES)}"
            )
        base_gguf = check_exportable(source, base_id)
    try:
        import peft  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError("rung tune-lm", TUNE_INSTALL) from e
    progress = progress or NullLoraProgress()

    with staging(out) as tmp, contextlib.closing(backend):
        progress.phase(f"loading {base_id}")
        backend.load()
        model, tok = backend.pretrained()
        device = str(backend.info().extra.get("device", "cpu"))
        pad_id = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
        if pad_id is None:
            raise ModelLoadError(
                f"the tokenizer of {base_id} has no padding or end-of-sequence token; "
                "choose a chat or instruct base"
            )
        train_enc = [_encode(tok, e, options.max_length, base_id) for e in train_set]
        val_enc = [_encode(tok, e, options.max_length, base_id) for e in val_set]
        truncated = sum(e.truncated for e in train_enc + val_enc)
        fitted = fit_lora(model, train_enc, val_enc, options, pad_id, device, progress, base_id)
        peft_model, trained = fitted.model, fitted.trained
        before, after, val_before = fitted.loss_before, fitted.loss_after, fitted.val_loss_before
        train_seconds = fitted.seconds

        progress.phase("saving the adapter")
        # No embedding layers are trained: skip peft's look for a changed vocabulary, which
        # warns when the base was a GGUF (no config.json beside it).
        peft_model.save_pretrained(str(tmp), save_embedding_layers=False)
        tok.save_pretrained(str(tmp))
        _fix_adapter_config(tmp / ADAPTER_CONFIG, _base_path(source))
        (tmp / "README.md").unlink(missing_ok=True)  # peft's template card; ours follows
        if options.merge:
            progress.phase("merging the weights")
            merged: Any = _dequantized(peft_model.merge_and_unload(), base_id)
            merged.save_pretrained(str(tmp / MERGED_DIR))
            tok.save_pretrained(str(tmp / MERGED_DIR))
        backend.close()  # the GGUF export below needs the memory more
        del model, peft_model
        exported: GgufExport | None = None
        if gguf is not None and base_gguf is not None:
            from rung.tune.gguf_export import write_merged_gguf

            progress.phase(f"writing the {gguf} GGUF")
            exported = write_merged_gguf(tmp, base_gguf, tmp / f"model-{gguf}.gguf", outtype=gguf)

        card = _card(
            base_id=base_id,
            source=source,
            options=options,
            data_info=data_info,
            n_train=len(train_set),
            n_val=len(val_set),
            truncated=truncated,
            chat_template=bool(getattr(tok, "chat_template", None)),
            system=_system_of(train_set),
            trained=trained,
            before=before,
            after=after,
            val_before=val_before,
            train_seconds=train_seconds,
            gguf=exported,
        )
        (tmp / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(render_readme(card, out.name), encoding="utf-8")
        _readable(tmp)
        publish(tmp, out)
    return LoraResult(
        out=out.resolve(),
        card=card,
        steps=trained.steps,
        epochs=trained.epochs,
        train_loss_before=before,
        train_loss_after=after,
        validation_loss_before=val_before,
        validation_loss=trained.validation_loss,
        stopped_early=trained.stopped_early,
        train_seconds=train_seconds,
        gguf=out.resolve() / exported.path.name if exported is not None else None,
        history=trained.history,
    )


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def _quiet_peft() -> Iterator[None]:
    """peft calls a transformers method deprecated in 5.x; the warning is for peft's authors."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing", category=FutureWarning
        )
        yield


def _readable(folder: Path) -> None:
    """The staging folder is private (mkdtemp: 0700) and some writers make 0600 files; the
    model folder gets the permissions of any folder the user creates (umask)."""
    import os

    umask = os.umask(0o022)  # the only way to read it; 0o022 meanwhile is the common default
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.rglob("*"):
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def _dequantized(model: Any, base_id: str) -> Any:
    """``model`` unmarked as quantized. transformers keeps a GGUF base's quantizer on the
    model and refuses to save it, though on the CPU the weights are plain float tensors: with
    every parameter a float, the merged model is an ordinary one."""
    if getattr(model, "hf_quantizer", None) is None:
        return model
    if not all(p.is_floating_point() for p in model.parameters()):
        raise ConfigurationError(
            f"the weights of {base_id} stay quantized on this device, so merged/ cannot be "
            "written; train on the CPU (--device cpu) or without --merge (the adapter folder "
            "and --gguf need no merged copy)"
        )
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    return model


def _fix_adapter_config(path: Path, base: str) -> None:
    """peft records the folder transformers loaded from (for a GGUF, its parent folder); name
    the base itself, so that the adapter loads with peft alone where the base is a hub id or
    folder, and says which file it was trained on where it is a GGUF."""
    config = json.loads(path.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base
    path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _system_of(examples: Sequence[TrainExample]) -> str | None:
    systems = {e.messages[0].content for e in examples if e.messages[0].role == "system"}
    return systems.pop() if len(systems) == 1 else None


# -- the cards ----------------------------------------------------------------------------------


def _card(
    *,
    base_id: str,
    source: ModelSource,
    options: LoraOptions,
    data_info: dict[str, Any] | None,
    n_train: int,
    n_val: int,
    truncated: int,
    chat_template: bool,
    system: str | None,
    trained: _Trained,
    before: float,
    after: float,
    val_before: float | None,
    train_seconds: float,
    gguf: GgufExport | None,
) -> dict[str, Any]:
    from datetime import UTC, datetime

    import rung

    def r(x: float | None) -> float | None:
        return None if x is None else round(x, 5)

    hyper = options.model_dump(mode="json", exclude={"device", "threads", "merge"})
    data = dict(data_info or {})
    data.update({"n_train": n_train, "n_validation": n_val, "truncated": truncated})
    return {
        "format": 1,
        "kind": "causal-lm",
        "method": "lora",
        "base": base_id,
        "base_source": {"kind": source.kind, "path": _base_path(source)},
        "prompt": {"template": "chat" if chat_template else "plain", "system": system},
        "seed": options.seed,
        "hyperparameters": hyper,
        "data": data,
        "steps": trained.steps,
        "epochs": trained.epochs,
        "stopped_early": trained.stopped_early,
        "train_loss": r(trained.train_loss),
        "train_loss_before": r(before),
        "train_loss_after": r(after),
        "validation_loss_before": r(val_before),
        "validation_loss": r(trained.validation_loss),
        "history": trained.history,
        "train_seconds": round(train_seconds, 3),
        "files": {
            "adapter": "adapter_model.safetensors",
            "merged": f"{MERGED_DIR}/" if options.merge else None,
            "gguf": gguf.path.name if gguf is not None else None,
        },
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "rung_version": rung.__version__,
    }


def _fig(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def render_readme(card: dict[str, Any], name: str) -> str:
    """A Hugging Face style model card; the numbers are the ones in rung.json."""
    base = str(card["base"])
    source = card.get("base_source") or {}
    base_model = source.get("path") if source.get("kind") == "hub" else base
    data, hyper, files = card["data"], card["hyperparameters"], card["files"]
    prompt = card.get("prompt") or {}
    lines = [
        "---",
        f"base_model: {json.dumps(base_model)}",
        "library_name: peft",
        "pipeline_tag: text-generation",
        "tags:",
        "- rung",
        "- lora",
        "- causal-lm",
        "---",
        "",
        f"# {name}",
        "",
        f"LoRA adapters (rank {hyper['rank']}, alpha {hyper['alpha']}) on `{base}`, trained "
        "with `rung tune-lm` on prompt/completion pairs; the loss was taken on the completion "
        "tokens only.",
        "",
        "## Data",
        "",
        f"- file: `{data.get('path', '-')}`"
        + (f" (sha256 `{str(data['sha256'])[:16]}…`)" if data.get("sha256") else ""),
        f"- examples: {data['n_train']} train, {data['n_validation']} validation"
        + (
            f"; {data['truncated']} cut to {hyper['max_length']} tokens"
            if data.get("truncated")
            else ""
        ),
        f"- prompt: the base's {'chat template' if prompt.get('template') == 'chat' else 'plain format'}"
        + (f", system message `{prompt['system']}`" if prompt.get("system") else ""),
        "",
        "## Results (mean cross-entropy per completion token)",
        "",
        "| | before | after |",
        "|---|---|---|",
        f"| training examples (up to {LOSS_SAMPLE}) | {_fig(card['train_loss_before'])} "
        f"| {_fig(card['train_loss_after'])} |",
        f"| validation | {_fig(card['validation_loss_before'])} | {_fig(card['validation_loss'])} |",
        "",
        f"{card['steps']} steps ({card['epochs']:g} epoch{'' if card['epochs'] == 1 else 's'}) in {card['train_seconds']:.0f} s"
        + (
            "; stopped early, the adapter of the lowest validation loss kept."
            if card["stopped_early"]
            else "."
        ),
        "",
        "## Hyperparameters",
        "",
        *(f"- {key}: {value}" for key, value in hyper.items()),
        "",
        "## Use it",
        "",
        f"- as a rung: `transformers:<path to {name}>` (the base is loaded and the adapter "
        "merged into it"
        + ("; `merged/` is used when present" if files.get("merged") else "")
        + ")",
    ]
    if files.get("gguf"):
        lines.append(f"- with llama.cpp: `llamacpp:<path to {name}>/{files['gguf']}`")
    if source.get("kind") != "gguf":
        lines += [
            "- with peft: `AutoPeftModelForCausalLM.from_pretrained(<path>)`",
        ]
    lines.append("")
    return "\n".join(lines)


def options_from(values: dict[str, Any]) -> LoraOptions:
    """LoraOptions from loose values (the CLI's), with one readable error."""
    try:
        return LoraOptions.model_validate(values)
    except ValidationError as e:
        raise ConfigurationError(f"invalid tune-lm options: {validation_message(e)}") from None
