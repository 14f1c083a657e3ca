"""The ``onnx`` backend: a tuned classifier exported by ``rung export onnx``, run with ONNX
Runtime and the ``tokenizers`` library only.

No torch and no transformers are imported, so the rung stays small where it runs (an edge box,
a phone-class CPU, a slim container): ``onnxruntime`` + ``tokenizers`` + numpy. Names:
``onnx:<folder>``; the folder holds ``model_int8.onnx`` and/or ``model.onnx`` (inputs
``input_ids``, ``attention_mask`` and, for BERT-like models, ``token_type_ids``; output
``logits``), ``tokenizer.json`` and ``rung.json`` (labels, max_seq_length, padding).

The tokenization lives here as functions (the softmax is ``rung.models.base.softmax``), and the
exporter checks its graphs through them: the logit difference ``rung.json`` records is that of
the path this rung runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from rung.errors import (
    ConfigurationError,
    DataError,
    MissingDependencyError,
    ModelLoadError,
    ModelNotFoundError,
)
from rung.models.base import (
    ClassifyRequest,
    Model,
    ModelInfo,
    Prediction,
    predictions_from,
    softmax,
    stable_hash,
)
from rung.models.profile import BackendProfile

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray
    from tokenizers import Tokenizer

__all__ = [
    "CARD_FILE",
    "FP32_FILE",
    "INSTALL",
    "INT8_FILE",
    "TOKENIZER_FILE",
    "OnnxModel",
    "OnnxOptions",
    "encode",
    "make_tokenizer",
]

INSTALL = "pip install 'rung[onnx]'"
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
CARD_FILE = "rung.json"
TOKENIZER_FILE = "tokenizer.json"
#: the files a folder is run from when the ``file`` option is not set, in order of preference
DEFAULT_FILES = (INT8_FILE, FP32_FILE)
EXPORT_HINT = "export a tuned classifier with `rung export onnx MODEL_DIR --out DIR`"


class OnnxOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str | None = Field(
        default=None,
        description="Which .onnx file of the folder to run. Default: model_int8.onnx when "
        "present, else model.onnx.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        description="ONNX Runtime intra-op threads. Default: one per core.",
    )
    spin_wait: bool = Field(
        default=False,
        description="Let ONNX Runtime's idle threads spin for the next piece of work instead of "
        "sleeping. Off by default: on a machine shared with other work (other rungs of the same "
        "server) spinning threads fight for the cores, and 2 threads ran the int8 graph at 150 "
        "sentences/s with spinning against 250 without, on 2 busy cores. Turn it on when the "
        "rung has its cores to itself and the last millisecond of latency counts.",
    )
    batch_size: int = Field(
        default=32,
        ge=1,
        description="Texts per forward pass; the server and the load test gather concurrent "
        "requests into batches of up to this many.",
    )
    max_seq_length: int | None = Field(
        default=None,
        ge=2,
        description="Tokens per text before truncation. Default: the length the model was "
        "tuned with (rung.json).",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        description="ONNX Runtime execution providers, in order of preference "
        "(CPUExecutionProvider, CUDAExecutionProvider, CoreMLExecutionProvider, ...).",
    )


# -- the path from text to probabilities (shared with the exporter's check) ----------------------


def _padding(folder: Path, card: dict[str, Any], tokenizer: Tokenizer) -> dict[str, Any]:
    """Pad id, token and type id: from the card (the exporter writes them), else the
    tokenizer_config.json's pad token. A BERT pads with 0 but a RoBERTa with 1, so a default
    would be wrong for some models; the attention mask hides the pad either way, but a wrong
    id outside the vocabulary would fail."""
    given = card.get("tokenizer")
    if isinstance(given, dict) and isinstance(given.get("pad_id"), int):
        return {
            "pad_id": int(given["pad_id"]),
            "pad_token": str(given.get("pad_token") or ""),
            "pad_type_id": int(given.get("pad_type_id") or 0),
            "direction": "left" if given.get("padding_side") == "left" else "right",
        }
    token = None
    try:
        config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        pad = config.get("pad_token")
        token = pad.get("content") if isinstance(pad, dict) else pad
    except (OSError, ValueError, AttributeError):
        pass
    pad_id = tokenizer.token_to_id(token) if isinstance(token, str) else None
    if pad_id is None:
        token, pad_id = "[PAD]", tokenizer.token_to_id("[PAD]") or 0
    return {"pad_id": pad_id, "pad_token": token, "pad_type_id": 0, "direction": "right"}


def make_tokenizer(folder: Path, card: dict[str, Any], max_length: int) -> Tokenizer:
    """The folder's tokenizer.json, truncating to ``max_length`` and padding each batch to its
    longest text. The settings are set here, not taken from the file: Hugging Face saves
    whatever truncation its last call used."""
    from tokenizers import Tokenizer

    path = folder / TOKENIZER_FILE
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as e:  # the boundary: a missing, truncated or foreign file
        raise ModelLoadError(
            f"cannot read the tokenizer {path}: {type(e).__name__}: {e}; {EXPORT_HINT}"
        ) from e
    tokenizer.enable_truncation(max_length=max_length)
    pad = _padding(folder, card, tokenizer)
    tokenizer.enable_padding(
        direction=pad["direction"],
        pad_id=pad["pad_id"],
        pad_type_id=pad["pad_type_id"],
        pad_token=pad["pad_token"],
    )
    return tokenizer


def encode(
    tokenizer: Tokenizer, texts: Sequence[str], inputs: Sequence[str]
) -> tuple[dict[str, NDArray[np.int64]], list[int]]:
    """The graph's inputs for ``texts`` (one padded batch), and the tokens read per text."""
    import numpy as np

    encodings = tokenizer.encode_batch(list(texts))
    mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
    feeds = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64)}
    feeds["attention_mask"] = mask
    if "token_type_ids" in inputs:
        feeds["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
    return {k: v for k, v in feeds.items() if k in inputs}, [int(n) for n in mask.sum(axis=1)]


# -- the backend ----------------------------------------------------------------------------------


class OnnxModel(Model):
    """An exported classifier: softmax over the ONNX graph's logits."""

    provider: ClassVar[str] = "onnx"
    Options: ClassVar[type[BaseModel]] = OnnxOptions
    # Self-hosted encoders; the catalog reads no card from an exported folder.
    profile: ClassVar[BackendProfile] = BackendProfile(
        kind="encoder", requires=("onnxruntime", "tokenizers"), install=INSTALL
    )
    needs_training: ClassVar[bool] = False

    def __init__(self, name: str, options: BaseModel | None = None) -> None:
        super().__init__(name, options)
        assert isinstance(self.options, OnnxOptions)
        self.opts: OnnxOptions = self.options
        self._session: Any = None
        self._tokenizer: Tokenizer | None = None
        self._inputs: list[str] = []
        self._card: dict[str, Any] | None = None

    # -- the folder -----------------------------------------------------------------------------

    @property
    def folder(self) -> Path:
        return Path(self.name).expanduser()

    @property
    def max_batch(self) -> int:
        return self.opts.batch_size

    def _file(self) -> Path:
        onnx_files = sorted(p.name for p in self.folder.glob("*.onnx"))
        if self.opts.file is not None:
            path = self.folder / self.opts.file
            if not path.is_file():
                raise ModelNotFoundError(
                    f"{path} not found (option file: {self.opts.file}); the folder holds "
                    f"{', '.join(onnx_files) or 'no .onnx file'}"
                )
            return path
        for name in DEFAULT_FILES:
            if (self.folder / name).is_file():
                return self.folder / name
        others = f" (it holds {', '.join(onnx_files)}: pick one with the option file)"
        raise ModelLoadError(
            f"{self.folder} holds no {INT8_FILE} or {FP32_FILE}"
            f"{others if onnx_files else ''}; {EXPORT_HINT}"
        )

    def card(self) -> dict[str, Any]:
        """The folder's rung.json, checked: a classifier with at least two labels."""
        if self._card is None:
            if not self.folder.is_dir():
                what = "a file, not a folder" if self.folder.exists() else "not found"
                raise ModelNotFoundError(
                    f"model folder {self.folder} is {what}; onnx:<folder> takes the folder "
                    f"`rung export onnx` wrote"
                )
            path = self.folder / CARD_FILE
            try:
                card = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise ModelLoadError(
                    f"{self.folder} has no {CARD_FILE}, so its labels are unknown; {EXPORT_HINT}"
                ) from None
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"{path} is unreadable ({e}); {EXPORT_HINT}") from e
            labels = card.get("labels") if isinstance(card, dict) else None
            if (
                not isinstance(labels, list)
                or len(labels) < 2
                or not all(isinstance(x, str) for x in labels)
            ):
                raise ModelLoadError(
                    f"{path} lists no labels (a list of at least two strings); {EXPORT_HINT}"
                )
            self._card = card
        return self._card

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card()["labels"])

    @property
    def trained_labels(self) -> tuple[str, ...] | None:
        return self.labels

    def _max_length(self) -> int:
        card = self.card()
        length = self.opts.max_seq_length or card.get("max_seq_length") or 512
        limit = card.get("max_position_embeddings")
        if isinstance(limit, int) and length > limit:
            raise ConfigurationError(
                f"max_seq_length {length} is longer than {self.model_id} can read ({limit} "
                f"positions); lower it to {limit} or less"
            )
        return int(length)

    # -- lifecycle ------------------------------------------------------------------------------

    def check(self) -> None:
        """The libraries are installed and the folder holds a graph, a tokenizer and labels."""
        for module in ("onnxruntime", "tokenizers", "numpy"):
            if importlib.util.find_spec(module) is None:
                raise MissingDependencyError(f"the onnx backend ({self.model_id})", INSTALL)
        self.card()
        self._file()
        if not (self.folder / TOKENIZER_FILE).is_file():
            raise ModelLoadError(f"{self.folder} has no {TOKENIZER_FILE}; {EXPORT_HINT}")
        self._max_length()

    def load(self) -> None:
        self.check()
        import onnxruntime as ort

        available = ort.get_available_providers()
        missing = [p for p in self.opts.providers if p not in available]
        if missing:
            raise ConfigurationError(
                f"ONNX Runtime here has no {', '.join(missing)} (it has {', '.join(available)}); "
                "set the option providers to those, or install the onnxruntime build that "
                "brings them (e.g. onnxruntime-gpu for CUDAExecutionProvider)"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.opts.threads or (os.cpu_count() or 1)
        options.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if self.opts.spin_wait else "0"
        )
        options.log_severity_level = 3  # warnings about unused initializers are not the user's
        path = self._file()
        try:
            session = ort.InferenceSession(
                str(path), sess_options=options, providers=self.opts.providers
            )
        except Exception as e:  # the boundary: any failure to build the session
            raise ModelLoadError(
                f"cannot load {path}: {type(e).__name__}: {e}; {EXPORT_HINT} again"
            ) from e
        inputs = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if "input_ids" not in inputs or "logits" not in outputs:
            raise ModelLoadError(
                f"{path} is not a classifier graph of `rung export onnx` (inputs "
                f"{', '.join(inputs)}; outputs {', '.join(outputs)}); {EXPORT_HINT}"
            )
        self._tokenizer = make_tokenizer(self.folder, self.card(), self._max_length())
        self._inputs = inputs
        self._session = session

    def fit(self, texts: Sequence[str], labels: Sequence[str], label_set: Sequence[str]) -> None:
        """The model is trained already: only check that the task asks for its labels."""
        self._check_labels(tuple(label_set))

    def _check_labels(self, asked: tuple[str, ...]) -> None:
        if set(asked) != set(self.labels):
            raise DataError(
                f"{self.model_id} was tuned on the labels {', '.join(self.labels)} but the task "
                f"asks for {', '.join(asked)}; use a model tuned on this task's labels "
                "(`rung tune`, then `rung export onnx`)"
            )

    async def classify(self, requests: Sequence[ClassifyRequest]) -> list[Prediction]:
        if not requests:
            return []
        for labels in {r.labels for r in requests}:
            self._check_labels(labels)
        if self._session is None:
            await asyncio.to_thread(self.load)
        return await asyncio.to_thread(self._classify, [r.text for r in requests])

    def _classify(self, texts: list[str]) -> list[Prediction]:
        labels = self.labels
        out: list[Prediction] = []
        for start in range(0, len(texts), self.opts.batch_size):
            probs, tokens = self._probabilities(texts[start : start + self.opts.batch_size])
            out.extend(predictions_from(probs, tokens, labels))
        return out

    def _probabilities(self, texts: list[str]) -> tuple[NDArray[np.float64], list[int]]:
        assert self._tokenizer is not None and self._session is not None
        feeds, tokens = encode(self._tokenizer, texts, self._inputs)
        logits = self._session.run(["logits"], feeds)[0]
        if logits.shape[1] != len(self.labels):
            raise ModelLoadError(
                f"{self._file()} answers {logits.shape[1]} logits but {CARD_FILE} lists "
                f"{len(self.labels)} labels; {EXPORT_HINT} again"
            )
        return softmax(logits), tokens

    # -- facts ----------------------------------------------------------------------------------

    def info(self) -> ModelInfo:
        card = self.card()
        path = self._file()
        described = (card.get("files") or {}).get(path.name) or {}
        extra: dict[str, Any] = {
            "labels": list(self.labels),
            "base": card.get("base"),
            "source": (card.get("source") or {}).get("path"),
            "opset": card.get("opset"),
            "threads": self.opts.threads or os.cpu_count(),
            "providers": self.opts.providers,
        }
        if "max_abs_logit_difference" in described:
            extra["max_abs_logit_difference"] = described["max_abs_logit_difference"]
        return ModelInfo(
            params=card.get("params"),
            file_size_bytes=path.stat().st_size,
            path=str(path.resolve()),
            quantization=described.get("precision")
            or ("int8" if path.name == INT8_FILE else "fp32"),
            context_length=self.opts.max_seq_length or card.get("max_seq_length"),
            extra=extra,
        )

    def fingerprint(self) -> str:
        # Which graph (a new export gives new answers) and how it is run: int8 activations are
        # quantized per batch, so even batch_size can move a score in its last digits.
        path = self._file()
        stat = path.stat()
        tokenizer = self.folder / TOKENIZER_FILE
        return stable_hash(
            {
                "id": self.model_id,
                "file": str(path.resolve()),
                "stamp": [stat.st_size, stat.st_mtime_ns],
                "tokenizer": [tokenizer.stat().st_size, tokenizer.stat().st_mtime_ns]
                if tokenizer.is_file()
                else None,
                "options": self.opts.model_dump(mode="json"),
            }
        )

    def close(self) -> None:
        self._session = None
        self._tokenizer = None
