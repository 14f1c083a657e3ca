"""Export a tuned encoder classifier to ONNX, int8-quantized for the edge: its own rung
(``onnx:<folder>``).

The export traces the classifier with PyTorch's TorchScript exporter (``dynamo=False``): the
dynamo exporter of torch 2.9+ needs the ``onnxscript`` package, and for a BERT-class encoder the
traced graph is exact (logits within 1e-5 of PyTorch's). Attention is loaded in its eager form,
which traces to plain matrix products that ONNX Runtime fuses itself. Batch and sequence axes
are dynamic. A folder with a linear head (the default full fine-tune, or setfit) is exported
whole: encoder, pooling, normalization and the head in one graph, so every kind of tuned folder
gives the same kind of ONNX folder and the same rung.

Quantization is ONNX Runtime's dynamic int8 quantization: the weights of the matrix products
stored as int8 (per output channel, 7 bits: the 8th would saturate the u8×s8 kernels of CPUs
without VNNI, and per-channel scales keep 99.8% of the labels where one scale per tensor kept
98.9% on the financial phrasebank), activations quantized per batch at run time, no
calibration data. The fp32 graph stays beside the int8 one, so the rung can run either.

``rung.json`` records, per graph, how far its logits are from PyTorch's on a few texts, through
the tokenizer and softmax the rung itself uses (``rung.models.onnx``).

- ``source`` — which folders may be exported, read and checked first;
- ``trace`` — the classifier as one PyTorch module, and PyTorch's reference logits;
- ``card`` — config.json, the tokenizer facts and README.md of the ONNX folder;
- ``export`` — ``export_onnx``: trace, quantize, check, write.
"""

from rung.export.onnx.export import (
    CHECK_TEXTS,
    DEFAULT_OPSET,
    FP32_FILE,
    INT8_FILE,
    ExportResult,
    GraphCheck,
    export_onnx,
)

__all__ = [
    "CHECK_TEXTS",
    "DEFAULT_OPSET",
    "FP32_FILE",
    "INT8_FILE",
    "ExportResult",
    "GraphCheck",
    "export_onnx",
]
