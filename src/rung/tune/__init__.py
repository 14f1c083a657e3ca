"""tune: fine-tune a small model on the user's data, into a folder that is a rung.

- ``encoder/`` — an encoder classifier (full fine-tune or setfit): ``encoder:<folder>``;
- ``lm/`` — LoRA adapters on a small causal LM: ``transformers:<folder>``;
- ``distill`` — a teacher rung labels the texts, an encoder student learns from its labels.

The folders are written through ``rung.export.folder``; ``rung.export`` also turns them into
ONNX (encoders) and GGUF (LoRA) files for other runtimes.
"""

from rung.tune.encoder import NullProgress, TuneOptions, TuneProgress, TuneResult, tune_classifier

__all__ = ["NullProgress", "TuneOptions", "TuneProgress", "TuneResult", "tune_classifier"]
