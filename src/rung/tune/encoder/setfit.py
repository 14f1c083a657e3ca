"""SetFit-style fine-tuning, for few labelled examples per class (8-64).

As in the setfit library (Tunstall et al., 2022): pairs of training texts are drawn, half with
the same label (target similarity 1) and half with different labels (0); the sentence encoder
is fine-tuned with sentence-transformers' ``CosineSimilarityLoss`` on them, so that texts of a
class move together; then a logistic regression is trained on the new, unit-length sentence
embeddings. A few dozen examples yield thousands of pairs, which is why this works where a
classification head trained from scratch has too little to learn from.

The folder is the fine-tuned sentence-transformers model plus ``head.safetensors``: ``coef``
[labels, dimension] and ``intercept`` [labels], float64, rows in label order, so that the
probabilities are softmax(embedding @ coef.T + intercept) for two labels as for many.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.errors import MissingDependencyError, ModelLoadError
from rung.models.encoder import HEAD_FILE, head_probabilities
from rung.tune.encoder.evaluation import EarlyStopping, score
from rung.tune.encoder.heads import head_arrays, quiet_transformers
from rung.tune.encoder.method import Trained, optimizer_for
from rung.tune.encoder.options import INSTALL, TuneOptions
from rung.tune.encoder.progress import TuneProgress
from rung.tune.encoder.splits import Split

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["make_pairs", "train_setfit"]

MAX_ITER = 1000


def make_pairs(split: Split, per_example: int, rng: random.Random) -> list[tuple[str, str, float]]:
    """``per_example`` pairs per training text, half positive and half negative; a label with
    a single example has no positive pair."""
    by_label: dict[str, list[int]] = defaultdict(list)
    for i, lab in enumerate(split.labels):
        by_label[lab].append(i)
    others = {lab: [j for j in range(len(split)) if split.labels[j] != lab] for lab in by_label}
    pairs: list[tuple[str, str, float]] = []
    for _ in range(math.ceil(per_example / 2)):
        for i, (text, lab) in enumerate(zip(split.texts, split.labels, strict=True)):
            same = by_label[lab]
            if len(same) > 1:
                j = rng.choice(same[:-1])
                j = same[-1] if j == i else j  # never a text with itself
                pairs.append((text, split.texts[j], 1.0))
            pairs.append((text, split.texts[rng.choice(others[lab])], 0.0))
    rng.shuffle(pairs)
    return pairs


def _loss_class() -> Any:
    import importlib

    # moved in sentence-transformers 6; rung supports >= 3
    for module in (
        "sentence_transformers.sentence_transformer.losses",
        "sentence_transformers.losses",
    ):
        try:
            return importlib.import_module(module).CosineSimilarityLoss
        except (ImportError, AttributeError):
            continue
    raise MissingDependencyError("rung tune --method setfit", INSTALL)


def train_setfit(
    folder: Path,
    train: Split,
    val: Split,
    labels: Sequence[str],
    options: TuneOptions,
    device: str,
    progress: TuneProgress,
    workdir: Path,
) -> Trained:
    try:
        import numpy as np
        import torch
        from safetensors.torch import load_model, save_model
        from sentence_transformers import SentenceTransformer
        from sklearn.linear_model import LogisticRegression
    except ImportError as e:
        raise MissingDependencyError("rung tune --method setfit", INSTALL) from e
    torch.manual_seed(options.seed)
    with quiet_transformers():
        try:
            st = SentenceTransformer(str(folder), device=device, local_files_only=True)
        except Exception as e:  # the boundary: any failure to build the model is a load error
            raise ModelLoadError(
                f"cannot load {folder} as a sentence encoder: {type(e).__name__}: {e}; point "
                "--base at a sentence-transformers or Hugging Face encoder folder"
            ) from e
    st.max_seq_length = options.max_seq_length
    loss_fn = _loss_class()(st)
    rng = random.Random(options.seed)
    size = options.batch_size
    counts = Counter(train.labels)
    per_round = len(train) + sum(1 for lab in train.labels if counts[lab] > 1)
    per_epoch = math.ceil(per_round * math.ceil(options.pairs_per_example / 2) / size)
    total = per_epoch * options.contrastive_epochs
    optimizer, scheduler = optimizer_for(st, options, total)
    preprocess = getattr(st, "preprocess", None) or st.tokenize
    checkpoint = workdir / "checkpoint.safetensors"
    head: dict[str, NDArray[np.float64]] = {}

    def embed(texts: Sequence[str]) -> NDArray[np.float64]:
        vectors = st.encode(
            list(texts),
            batch_size=2 * size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float64)

    def fit_head() -> None:
        model = LogisticRegression(C=options.head_c, max_iter=MAX_ITER, random_state=options.seed)
        model.fit(embed(train.texts), train.labels)
        head["coef"], head["intercept"] = head_arrays(model, labels)

    def predict(texts: Sequence[str]) -> list[str]:
        probs = head_probabilities(embed(texts), head["coef"], head["intercept"])
        return [labels[k] for k in probs.argmax(axis=1).tolist()]

    def keep_best() -> None:
        save_model(st, str(checkpoint))
        head["best_coef"], head["best_intercept"] = head["coef"], head["intercept"]

    def features(texts: list[str]) -> dict[str, Any]:
        found = preprocess(texts)
        return {k: v.to(device) if hasattr(v, "to") else v for k, v in found.items()}

    stopper = EarlyStopping(options, keep_best, progress)
    progress.start(total)
    step = 0
    for epoch in range(options.contrastive_epochs):
        pairs = make_pairs(train, options.pairs_per_example, rng)
        losses: list[float] = []
        st.train()
        for b in range(0, len(pairs), size):
            chunk = pairs[b : b + size]
            target = torch.tensor([p[2] for p in chunk], dtype=torch.float32, device=device)
            loss = loss_fn(
                [features([p[0] for p in chunk]), features([p[1] for p in chunk])], target
            )
            loss.backward()
            torch.nn.utils.clip_grad_norm_(st.parameters(), options.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(float(loss.item()))
            progress.step(losses[-1])
        fit_head()
        scores = score(val, predict(val.texts), labels)
        mean_loss = sum(losses) / max(1, len(losses))
        if stopper.update(float(epoch + 1), step, mean_loss, scores):
            break
    if not stopper.last_was_best:
        load_model(st, str(checkpoint))
        head["coef"], head["intercept"] = head["best_coef"], head["best_intercept"]
    st.eval()

    def save(target: Path) -> None:
        from safetensors.numpy import save_file

        st.save(str(target), create_model_card=False)
        save_file(
            {"coef": head["coef"], "intercept": head["intercept"]},
            str(target / HEAD_FILE),
            metadata={"labels": json.dumps(list(labels)), "normalize": "true"},
        )

    return Trained(
        predict=predict,
        save=save,
        best_epoch=stopper.best_epoch,
        history=stopper.history,
        card_extra={"normalize": True},
    )
