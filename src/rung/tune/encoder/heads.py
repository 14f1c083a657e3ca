"""The classifier a full fine-tune trains: the encoder and a new head, either over the mean of
the token states (``pooling: mean``, saved as a sentence-transformers folder plus
``head.safetensors``) or over the first token through the model's pooler (``pooling: cls``, a
transformers ``*ForSequenceClassification`` folder); the linear probe that can start the mean
head, and the scikit-learn head as softmax rows (setfit's head too)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rung.errors import MissingDependencyError, ModelLoadError
from rung.models.encoder import HEAD_FILE, head_probabilities, mean_pool, sequence_probabilities
from rung.tune.encoder.options import INSTALL, TuneOptions
from rung.tune.encoder.splits import Split

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

__all__ = ["Net", "head_arrays", "mean_net", "quiet_transformers", "sequence_net"]


@contextmanager
def quiet_transformers() -> Iterator[None]:
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
    with quiet_transformers():
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


@dataclass
class Net:
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


def sequence_net(
    folder: Path, labels: Sequence[str], options: TuneOptions, device: str, train: Split
) -> Net:
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

    return Net(
        module=model,
        tokenizer=tokenizer,
        logits=lambda batch: model(**batch).logits,
        predict=predict,
        save=save,
        fast=None,
        card_extra={"head": "sequence", "pooling": "cls"},
    )


def mean_net(
    folder: Path, labels: Sequence[str], options: TuneOptions, device: str, train: Split
) -> Net:
    """The transformer, the mean of its token states over the real tokens, and a new linear
    head, trained together; saved as a sentence-transformers folder (transformer, mean pooling)
    and ``head.safetensors``, which the encoder rung reads as it reads a setfit folder."""
    try:
        import numpy as np
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as e:
        raise MissingDependencyError("rung tune", INSTALL) from e

    with quiet_transformers():
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

    return Net(
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
