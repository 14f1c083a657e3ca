"""export: models in a form another runtime reads, and the safe writing of every model folder.

- ``folder`` — how any model folder rung writes (``rung tune``, ``tune-lm``, ``distill``, the
  exports) appears at ``out``: refused when it would lose something, written beside it, renamed
  into place only complete;
- ``onnx/`` — a tuned encoder classifier as ONNX graphs, int8-quantized: the ``onnx:<folder>``
  rung, for ONNX Runtime without PyTorch;
- ``gguf`` — the merged weights of a LoRA folder as one GGUF file, for llama.cpp
  (``llamacpp:<file>``).

tune imports from here (tune-lm writes its GGUF through ``gguf``); nothing here imports tune.
Nothing heavy is imported with the package: torch, onnxruntime and gguf on first use.
"""
