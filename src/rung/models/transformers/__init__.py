"""The ``transformers`` backend: a Hugging Face causal LM run in-process with PyTorch.

For models llama.cpp does not run, or to run on a GPU through PyTorch. Names are a bundled
alias, a ``.gguf`` file, a model folder, a hub id or a LoRA adapter folder (``sources``).
Classification scores every label as a continuation of the prompt (``scoring``).

One job per module:

=========  ==================================================================================
options    ``TransformersOptions``, the spec's ``options:``
profile    the bundled alias, card sources and pricing (``rung.models.profile``)
sources    names to sources (file, folder, hub id, adapter) and their cheap checks
hub        the Hugging Face cache, and whether the hub answers
loading    tokenizer and causal LM of a source, a LoRA adapter merged in
prompt     the chat template or the plain format, and labels tokenised in context
scoring    label log-probabilities by teacher forcing, with prompt-prefix cache reuse
threads    PyTorch's thread count for one call
files      weight files and the stamps the response cache keys on
backend    ``TransformersModel``, the contract put together
=========  ==================================================================================
"""

from rung.models.transformers.backend import TransformersModel
from rung.models.transformers.options import INSTALL, TUNE_INSTALL, TransformersOptions
from rung.models.transformers.profile import ALIASES
from rung.models.transformers.prompt import Prompt, render_prompt
from rung.models.transformers.scoring import label_distribution
from rung.models.transformers.sources import (
    ADAPTER_CONFIG,
    MERGED_DIR,
    ModelSource,
    adapter_base_name,
    resolve_source,
)

__all__ = [
    "ADAPTER_CONFIG",
    "ALIASES",
    "INSTALL",
    "MERGED_DIR",
    "TUNE_INSTALL",
    "ModelSource",
    "Prompt",
    "TransformersModel",
    "TransformersOptions",
    "adapter_base_name",
    "label_distribution",
    "render_prompt",
    "resolve_source",
]
