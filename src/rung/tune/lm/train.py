"""The seeded part of a LoRA run: adapters put on the base (peft), the loss on the completions
measured before and after, and the training loop (AdamW, linear warmup then decay, gradient
clipping) with early stopping on the validation loss, the best adapter weights restored."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from rung.errors import ConfigurationError
from rung.tune.lm.encoding import Encoded, collate
from rung.tune.lm.options import LoraOptions
from rung.tune.lm.progress import LoraProgress

__all__ = ["LOSS_SAMPLE", "Fitted", "Trained", "fit_lora", "mean_loss"]

#: training examples whose loss is measured before and after training, for the card
LOSS_SAMPLE = 64


def mean_loss(
    model: Any, encoded: Sequence[Encoded], batch_size: int, pad_id: int, device: str
) -> float:
    """Mean cross-entropy per completion token over ``encoded``, without dropout."""
    import torch

    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        with torch.no_grad():
            for start in range(0, len(encoded), batch_size):
                batch = collate(encoded[start : start + batch_size], pad_id, device)
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
class Trained:
    steps: int
    epochs: float
    stopped_early: bool
    validation_loss: float | None
    train_loss: float
    history: list[dict[str, Any]]


def _train(
    model: Any,
    train: list[Encoded],
    val: list[Encoded],
    options: LoraOptions,
    pad_id: int,
    device: str,
    progress: LoraProgress,
) -> Trained:
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
            batch = collate(
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
    return Trained(
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
    trained: Trained
    loss_before: float
    loss_after: float
    val_loss_before: float | None
    seconds: float


def fit_lora(
    model: Any,
    train: list[Encoded],
    val: list[Encoded],
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
