"""A token-classification head on an encoder, for ``extract``: the encoder (a
sentence-transformers or Hugging Face folder, e.g. the bundled minilm-l6) fine-tuned end to end
with a linear layer over its token states, one IOB2 tag per word.

A word split into several sub-tokens is tagged by its first sub-token; the others are left out
of the loss (label -100), as the Hugging Face token-classification recipe does, so a long word
does not count more than a short one. The tags it predicts are scored like any rung's
(``rung.tasks.text_metrics.entity_prf``).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rung.errors import MissingDependencyError
from rung.models.encoder.sources import resolve_encoder
from rung.tasks.registry import Item
from rung.tune.encoder.heads import quiet_transformers

__all__ = ["TokenTagger", "tag_set", "train_token_tagger"]

IGNORE = -100


def tag_set(items: Sequence[Item[list[str]]]) -> list[str]:
    """The IOB2 tags of the items, O first, then by type (B- before I-)."""
    kinds = sorted({t[2:] for item in items for t in item.reference if t != "O"})
    return ["O", *(f"{p}-{k}" for k in kinds for p in ("B", "I"))]


def _libs() -> tuple[Any, Any]:
    try:
        import torch
        import transformers
    except ImportError as e:
        raise MissingDependencyError(
            "a token-classification head", "pip install 'rung[tune]'"
        ) from e
    return torch, transformers


@dataclass
class TokenTagger:
    """A fine-tuned tagger: tags per word for sentences given as tokens."""

    model: Any
    tokenizer: Any
    tags: list[str]
    max_length: int = 128

    def _encode(self, words: Sequence[Sequence[str]]) -> Any:
        return self.tokenizer(
            [list(w) for w in words],
            is_split_into_words=True,
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )

    def predict(self, sentences: Sequence[Sequence[str]], batch_size: int = 32) -> list[list[str]]:
        torch, _ = _libs()
        self.model.eval()
        out: list[list[str]] = []
        for start in range(0, len(sentences), batch_size):
            batch = sentences[start : start + batch_size]
            enc = self._encode(batch)
            with torch.no_grad():
                best = self.model(**enc).logits.argmax(-1).tolist()
            for row, words in enumerate(batch):
                tags = ["O"] * len(words)
                seen: set[int] = set()
                for pos, word in enumerate(enc.word_ids(row)):
                    if word is not None and word not in seen:
                        seen.add(word)
                        tags[word] = self.tags[best[row][pos]]
                out.append(tags)
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def train_token_tagger(
    encoder: str,
    train: Sequence[Item[list[str]]],
    *,
    epochs: int = 3,
    learning_rate: float = 5e-5,
    batch_size: int = 16,
    max_length: int = 128,
    seed: int = 0,
) -> TokenTagger:
    """Fine-tune ``encoder`` (a bundled name, a folder or a cached hub id) on the items' tags."""
    torch, transformers = _libs()
    folder, hub_id = resolve_encoder(encoder)
    source = str(folder) if folder is not None else hub_id
    tags = tag_set(train)
    index = {t: i for i, t in enumerate(tags)}
    torch.manual_seed(seed)
    with quiet_transformers():
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
        model = transformers.AutoModelForTokenClassification.from_pretrained(
            source,
            num_labels=len(tags),
            id2label=dict(enumerate(tags)),
            label2id=index,
            local_files_only=True,
        )
    tagger = TokenTagger(model, tokenizer, tags, max_length)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    order = list(range(len(train)))
    rng = random.Random(seed)
    model.train()
    for _ in range(epochs):
        rng.shuffle(order)
        for start in range(0, len(order), batch_size):
            batch = [train[i] for i in order[start : start + batch_size]]
            enc = tagger._encode([b.extra["tokens"] for b in batch])
            labels = torch.full(enc["input_ids"].shape, IGNORE, dtype=torch.long)
            for row, item in enumerate(batch):
                seen: set[int] = set()
                for pos, word in enumerate(enc.word_ids(row)):
                    if word is not None and word not in seen:
                        seen.add(word)
                        labels[row, pos] = index.get(item.reference[word], 0)
            loss = model(**enc, labels=labels).loss
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    return tagger


@dataclass(frozen=True)
class TaggerRun:
    """A tagger tuned on an extract spec's training split and scored on its test split."""

    tagger: TokenTagger
    n_train: int
    n_test: int
    metrics: dict[str, Any]


def tune_extract(
    task: Any, base_dir: Path, encoder: str, *, epochs: int = 3, learning_rate: float = 1e-4
) -> TaggerRun:
    """Train a tagger on ``task`` (an ``ExtractTask``) and score it with seqeval's entity F1."""
    from rung.tasks.extract import ExtractKind
    from rung.tasks.text_metrics import entity_prf

    kind = ExtractKind()
    train, test = kind.load_items(task, base_dir)
    tagger = train_token_tagger(
        encoder, train, epochs=epochs, learning_rate=learning_rate, seed=task.splits.seed
    )
    pred = tagger.predict([item.extra["tokens"] for item in test])
    metrics, _ = entity_prf([item.reference for item in test], pred, seed=task.splits.seed)
    return TaggerRun(tagger, len(train), len(test), metrics)
