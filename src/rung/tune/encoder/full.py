"""The ``full`` method's training loop: every weight of the encoder and its new head trained with
cross-entropy (AdamW, linear warmup then decay, gradient clipping) in a plain torch loop over
seeded batches, evaluated every epoch or every ``eval_steps``, the best weights kept in a
checkpoint in the staging folder and restored at the end."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rung.tune.encoder.evaluation import EarlyStopping, score
from rung.tune.encoder.heads import mean_net, sequence_net
from rung.tune.encoder.method import Trained, optimizer_for
from rung.tune.encoder.options import TuneOptions
from rung.tune.encoder.progress import TuneProgress
from rung.tune.encoder.splits import Split

if TYPE_CHECKING:
    import torch

__all__ = ["train_full"]


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


def train_full(
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

    build = mean_net if options.pooling == "mean" else sequence_net
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
