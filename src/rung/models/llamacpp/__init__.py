"""The ``llamacpp`` backend: a GGUF file run in-process by llama-cpp-python.

Names are the bundled models (``smollm2-135m-instruct``, ``gemma-3-270m``) or a path to any
``.gguf`` file. ``check()`` reads the GGUF header (``rung.formats.gguf``: magic, version, where
the tensor data ends), so a corrupt or truncated download is named as such before llama.cpp
sees it.

One job per module:

=============  ===============================================================================
options        ``LlamaCppOptions``, the spec's ``options:``
profile        the bundled files, card sources and pricing (``rung.models.profile``)
buffers        weight repacking (extra buffer types, off on AMX) and ``open_llama``
native         the one thread llama.cpp runs on, and its log relayed to Python logging
prompt         the chat template or the plain transcript, and the prompt's tokens
grammar        the GBNF grammar of the labels and the constrained decoding step
kvcache        the shared KV cache: rewind, prefix reuse, continuations
labels         classification: the constrained answer and every label's score in one pass
vocab          token bytes and end-of-generation tokens
decoding       the generation loop shared by ``generate`` and ``stream``
backend        ``LlamaCppModel``, the contract put together
=============  ===============================================================================
"""

from rung.models.llamacpp.backend import LlamaCppModel
from rung.models.llamacpp.buffers import (
    extra_buffers_note,
    extra_buffers_patch,
    open_llama,
    use_extra_buffers,
)
from rung.models.llamacpp.grammar import gbnf_for_labels
from rung.models.llamacpp.options import INSTALL, ExtraBuffers, LlamaCppOptions
from rung.models.llamacpp.prompt import render_plain

__all__ = [
    "INSTALL",
    "ExtraBuffers",
    "LlamaCppModel",
    "LlamaCppOptions",
    "extra_buffers_note",
    "extra_buffers_patch",
    "gbnf_for_labels",
    "open_llama",
    "render_plain",
    "use_extra_buffers",
]
