"""``EncoderModel``: a sentence-transformers model with a classification head trained on the
task's training split, or a tuned folder that answers with its own head.

The encoder stays frozen; ``fit`` embeds the training texts once and trains a logistic
regression on the embeddings, which takes seconds on a CPU and is deterministic.

``tokens_in`` is the count of tokens the encoder read (after truncation). It comes from the
attention masks of the same forward pass that embeds the texts (``output_value=None``), so
counting costs no second tokenization.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import BaseModel

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    RungError,
)
from rung.models.base import (
    ClassifyRequest,
    Embeddings,
    Model,
    ModelInfo,
    Prediction,
    predictions_from,
    stable_hash,
)
from rung.models.encoder.files import folder_max_seq, weights_size, weights_stamp
from rung.models.encoder.heads import head_probabilities, mean_pool, sequence_probabilities
from rung.models.encoder.options import CLASSIFY_SLICE, INSTALL, MAX_ITER, EncoderOptions
from rung.models.encoder.profile import PROFILE
from rung.models.encoder.sources import (
    check_folder,
    hub_offline,
    load_hub,
    load_st,
    not_cached,
    position_limit,
    resolve_encoder,
)
from rung.models.encoder.tuned import HEAD_FILE, TunedFolder, read_head, read_tuned
from rung.models.profile import BackendProfile

if TYPE_CHECKING:
    import numpy as np
    import torch
    from numpy.typing import NDArray
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

__all__ = ["EncoderModel"]


class EncoderModel(Model):
    """A frozen sentence encoder with a logistic-regression head trained by ``fit``, or a tuned
    classifier folder that answers with its own head."""

    provider: ClassVar[str] = "encoder"
    Options: ClassVar[type[BaseModel]] = EncoderOptions
    profile: ClassVar[BackendProfile] = PROFILE
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
    def max_batch(self) -> int:
        return self.opts.batch_size

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
            check_folder(folder)
        if folder is None and hub_id is not None and hub_offline():
            raise ModelLoadError(not_cached(hub_id, "HF_HUB_OFFLINE is set"))
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
            st = load_st(SentenceTransformer, str(folder), device, local_only=True)
        else:
            st = load_hub(SentenceTransformer, hub_id, device)
        max_len = self.opts.max_seq_length or (tuned.max_seq_length if tuned else None)
        if max_len is not None:
            self._check_length(max_len, position_limit(st))
            st.max_seq_length = max_len
        if tuned is not None:
            assert folder is not None
            self._coef, self._intercept = read_head(folder / HEAD_FILE, tuned)
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
            fallback = self._max_length() if self._clf is not None else folder_max_seq(folder)
            context = self.opts.max_seq_length or tuned.max_seq_length or fallback
        else:
            context = self.opts.max_seq_length or folder_max_seq(folder)
        return ModelInfo(
            params=params,
            file_size_bytes=weights_size(folder) if folder is not None else None,
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
                "files": weights_stamp(folder) if folder is not None else None,
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
