"""The merged weights of a LoRA folder (``rung tune-lm``) as a GGUF file for llama.cpp, usable as
``llamacpp:<file.gguf>``. Written with the ``gguf`` package alone: no llama.cpp checkout, no
torch.

How: the base GGUF's tensors are dequantized (``gguf.quants``, as transformers' GGUF loader
does when it trains the adapter), each adapted weight gets its LoRA delta ``scale · B · A``
added, and the result is written under the same GGUF names, in the same order, with the base's
metadata and tokenizer copied over. Only ``general.file_type`` changes.

The delta is made in Hugging Face's layout. For llama, llama.cpp's converter permutes the rows of
``q_proj`` and ``k_proj`` (each head's rotary halves interleaved) and transformers' loader undoes
that permutation on load; so the delta of those two is permuted as the converter does before it
is added to the GGUF tensor. Without it the attention of the exported model would be wrong while
every other tensor matched.

Supported: adapters on a GGUF base of the llama architecture (Llama, SmolLM, Mistral GGUFs
converted as llama; the bundled ``transformers:smollm2-135m-instruct``). A base that is a
Hugging Face folder or hub id has no GGUF tokenizer metadata to copy: train with ``--merge`` and
convert ``merged/`` with llama.cpp's ``convert_hf_to_gguf.py``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from rung.errors import ConfigurationError, MissingDependencyError, ModelLoadError, RunError
from rung.models.transformers import ADAPTER_CONFIG, INSTALL, ModelSource, resolve_source

__all__ = [
    "GGUF_TYPES",
    "SUPPORTED_ARCHITECTURES",
    "GgufExport",
    "GgufType",
    "check_exportable",
    "export_gguf",
    "write_merged_gguf",
]

GgufType = Literal["f16", "f32", "q8_0"]
GGUF_TYPES: tuple[str, ...] = get_args(GgufType)
SUPPORTED_ARCHITECTURES = ("llama",)
ADAPTER_WEIGHTS = "adapter_model.safetensors"
#: keys of the source's metadata that the writer sets itself or that change with the weights
_REWRITTEN = {
    "general.architecture",
    "general.file_type",
    "general.quantization_version",
    "general.alignment",
}
_PEFT_PREFIX = "base_model.model."
_ROUTE = (
    "for other bases, train with --merge and convert merged/ with llama.cpp's convert_hf_to_gguf.py"
)


@dataclass(frozen=True)
class GgufExport:
    path: Path
    outtype: str
    tensors: int
    adapted: int  # tensors that got a LoRA delta
    size_bytes: int
    seconds: float


def check_exportable(source: ModelSource, base_name: str) -> Path:
    """The base GGUF of an export, or a ConfigurationError that says what is supported."""
    from rung.catalog.gguf_meta import read_gguf

    if source.kind != "gguf" or source.path is None:
        raise ConfigurationError(
            f"GGUF export needs a base that is a GGUF file, whose tokenizer and metadata it "
            f"copies; {base_name} is a {source.kind} base. Supported: llama-architecture GGUF "
            f"bases (e.g. transformers:smollm2-135m-instruct, transformers:<file.gguf>); {_ROUTE}"
        )
    arch = read_gguf(source.path).architecture
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ConfigurationError(
            f"GGUF export supports the {', '.join(SUPPORTED_ARCHITECTURES)} architecture "
            f"(Llama, SmolLM, ...); {source.path} is {arch or 'of an unknown architecture'}: "
            f"{_ROUTE}"
        )
    return source.path


def export_gguf(
    folder: Path,
    out_file: Path | None = None,
    *,
    outtype: GgufType = "f16",
    force: bool = False,
) -> GgufExport:
    """Write the merged weights of the LoRA folder ``folder`` as a GGUF file (default:
    ``<folder>/model-<outtype>.gguf``). Refuses an existing file unless ``force``."""
    folder = Path(folder)
    if outtype not in GGUF_TYPES:
        raise ConfigurationError(
            f"unknown GGUF type {outtype!r}; use one of {', '.join(GGUF_TYPES)}"
        )
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ModelLoadError(
            f"{folder} holds no {ADAPTER_CONFIG}: give the folder `rung tune-lm` wrote"
        )
    _adapter_config(folder)
    source = resolve_source(str(folder))
    if source.base is None:
        raise ModelLoadError(
            f"the base of {folder} ({source.base_name}) cannot be found here; the GGUF is built "
            "from the base's own GGUF file: make it available and run again"
        )
    base_gguf = check_exportable(source.base, str(source.base_name))
    out_file = Path(out_file) if out_file is not None else folder / f"model-{outtype}.gguf"
    if out_file.exists() and not force:
        raise RunError(f"{out_file} exists; pass --force to replace it, or choose another file")
    if out_file.suffix != ".gguf":
        raise ConfigurationError(f"{out_file} does not end in .gguf; name the output file *.gguf")
    return write_merged_gguf(folder, base_gguf, out_file, outtype=outtype)


def _permute(w: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's permutation of a llama q/k projection (rows), from convert_hf_to_gguf.py."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
        .swapaxes(1, 2)
        .reshape(w.shape)
    )


def _field(reader: Any, key: str) -> Any:
    f = reader.fields.get(key)
    return f.contents() if f is not None else None


def _adapter_config(adapter_dir: Path) -> dict[str, Any]:
    """adapter_config.json, refused when it uses what this export does not merge."""
    try:
        config = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        if int(config["r"]) < 1 or float(config["lora_alpha"]) <= 0:
            raise ValueError("r and lora_alpha must be positive")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ModelLoadError(
            f"cannot read the LoRA settings of {adapter_dir / ADAPTER_CONFIG} ({e}); the "
            "folder is damaged: train it again"
        ) from e
    unsupported = [
        what
        for what, bad in (
            ("a peft method other than LoRA", config.get("peft_type", "LORA") != "LORA"),
            ("DoRA", bool(config.get("use_dora"))),
            (
                "per-module ranks or alphas",
                bool(config.get("rank_pattern") or config.get("alpha_pattern")),
            ),
            ("fan_in_fan_out", bool(config.get("fan_in_fan_out"))),
            ("modules_to_save", bool(config.get("modules_to_save"))),
        )
        if bad
    ]
    if unsupported:
        raise ConfigurationError(
            f"the adapter at {adapter_dir} uses {', '.join(unsupported)}, which GGUF export "
            f"does not merge; {_ROUTE}"
        )
    if not (adapter_dir / ADAPTER_WEIGHTS).is_file():
        raise ModelLoadError(
            f"{adapter_dir} holds no {ADAPTER_WEIGHTS}; the folder is incomplete: train it again"
        )
    return config


def _deltas(adapter_dir: Path, config: dict[str, Any], reader: Any) -> dict[str, Any]:
    """GGUF tensor name → the LoRA delta to add to it (float32, GGUF row order)."""
    import gguf
    import numpy as np

    try:
        from safetensors.numpy import load_file
    except ImportError as e:
        raise MissingDependencyError("GGUF export (safetensors)", INSTALL) from e
    r, alpha = int(config["r"]), float(config["lora_alpha"])
    scale = alpha / (math.sqrt(r) if config.get("use_rslora") else r)
    arch = str(_field(reader, "general.architecture"))
    n_blocks = int(_field(reader, f"{arch}.block_count"))
    n_head = int(_field(reader, f"{arch}.attention.head_count"))
    kv = _field(reader, f"{arch}.attention.head_count_kv")
    n_head_kv = int(kv) if kv is not None else n_head
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)

    weights = load_file(str(adapter_dir / ADAPTER_WEIGHTS))
    pairs: dict[str, dict[str, Any]] = {}
    for key, value in weights.items():
        module, dot, part = key.removeprefix(_PEFT_PREFIX).rpartition(".lora_")
        if not dot or part not in ("A.weight", "B.weight"):
            raise ConfigurationError(
                f"the adapter holds {key}, which GGUF export cannot merge (only LoRA A/B "
                f"weights of linear layers); {_ROUTE}"
            )
        pairs.setdefault(module, {})[part[0]] = value.astype(np.float32)
    deltas: dict[str, Any] = {}
    for module, ab in pairs.items():
        name = names.get_name(module + ".weight", try_suffixes=(".weight", ".bias"))
        if name is None or set(ab) != {"A", "B"}:
            raise ConfigurationError(
                f"the adapter's module {module} has no GGUF counterpart in a {arch} model; "
                "train it with the default target modules"
            )
        delta = (ab["B"] @ ab["A"]) * np.float32(scale)
        if name.endswith(".attn_q.weight"):
            delta = _permute(delta, n_head, n_head)
        elif name.endswith(".attn_k.weight"):
            delta = _permute(delta, n_head, n_head_kv)
        deltas[name] = delta
    return deltas


def _out_type(shape: tuple[int, ...], outtype: str) -> Any:
    import gguf

    q = gguf.GGMLQuantizationType
    if len(shape) == 1 or outtype == "f32":  # norms stay F32, as llama.cpp's converter keeps them
        return q.F32
    if outtype == "q8_0" and shape[-1] % gguf.GGML_QUANT_SIZES[q.Q8_0][0] == 0:
        return q.Q8_0
    return q.F16


def _copy_metadata(reader: Any, writer: Any, outtype: str) -> None:
    import gguf

    vt = gguf.GGUFValueType
    for f in reader.fields.values():
        if f.name.startswith("GGUF.") or f.name in _REWRITTEN:
            continue
        vtype = vt(f.types[0])
        if vtype == vt.ARRAY:
            if len(f.types) != 2:
                raise ConfigurationError(
                    f"the base's metadata key {f.name} is a nested array, which this export "
                    f"cannot copy; {_ROUTE}"
                )
            value = f.contents()
            if not value:
                continue  # the writer refuses empty arrays; llama.cpp reads a missing key alike
            writer.add_key_value(f.name, value, vtype, sub_type=vt(f.types[1]))
        else:
            writer.add_key_value(f.name, f.contents(), vtype)
    file_type = {
        "f32": gguf.LlamaFileType.ALL_F32,
        "f16": gguf.LlamaFileType.MOSTLY_F16,
        "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
    }[outtype]
    writer.add_file_type(int(file_type))
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)


def write_merged_gguf(
    adapter_dir: Path, base_gguf: Path, out_file: Path, *, outtype: GgufType = "f16"
) -> GgufExport:
    """Base GGUF + the adapter in ``adapter_dir`` → ``out_file``, one tensor in memory at a
    time, written beside it and renamed into place when complete."""
    try:
        import gguf
        import numpy as np
    except ImportError as e:
        raise MissingDependencyError("GGUF export", INSTALL) from e
    started = time.perf_counter()
    config = _adapter_config(adapter_dir)
    reader = gguf.GGUFReader(base_gguf)
    arch = str(_field(reader, "general.architecture"))
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ConfigurationError(
            f"GGUF export supports the {', '.join(SUPPORTED_ARCHITECTURES)} architecture; "
            f"{base_gguf} is {arch}: {_ROUTE}"
        )
    deltas = _deltas(adapter_dir, config, reader)
    unknown = sorted(set(deltas) - {t.name for t in reader.tensors})
    if unknown:
        raise ConfigurationError(
            f"the adapter changes {', '.join(unknown[:3])}, which {base_gguf} does not hold: "
            "the adapter was trained on another base"
        )
    plan = []
    for t in reader.tensors:
        shape = tuple(int(x) for x in reversed(t.shape.tolist()))  # numpy order: rows first
        plan.append((t, shape, _out_type(shape, outtype)))

    partial = out_file.with_name(out_file.name + ".partial")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(partial), arch)
    try:
        _copy_metadata(reader, writer, outtype)
        q = gguf.GGMLQuantizationType
        for t, shape, kind in plan:
            if kind == q.Q8_0:
                byte_shape = gguf.quants.quant_shape_to_byte_shape(shape, kind)
                writer.add_tensor_info(
                    t.name, byte_shape, np.dtype(np.uint8), math.prod(byte_shape), raw_dtype=kind
                )
            else:
                dtype = np.dtype(np.float32 if kind == q.F32 else np.float16)
                writer.add_tensor_info(t.name, shape, dtype, math.prod(shape) * dtype.itemsize)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t, shape, kind in plan:
            values = np.asarray(gguf.quants.dequantize(t.data, t.tensor_type), dtype=np.float32)
            values = values.reshape(shape)
            delta = deltas.get(t.name)
            if delta is not None:
                if delta.shape != values.shape:
                    raise ConfigurationError(
                        f"the adapter's delta for {t.name} is {delta.shape}, the base's tensor "
                        f"{values.shape}: the adapter was trained on another base"
                    )
                values = values + delta
            if kind == q.Q8_0:
                data = gguf.quants.quantize(values, kind)
            else:
                data = values.astype(np.float32 if kind == q.F32 else np.float16)
            writer.write_tensor_data(np.ascontiguousarray(data))
        writer.close()
        partial.replace(out_file)
    except OSError as e:
        raise RunError(f"cannot write {out_file}: {e}; check the folder and free space") from e
    finally:
        writer.close()
        partial.unlink(missing_ok=True)
    return GgufExport(
        path=out_file,
        outtype=outtype,
        tensors=len(plan),
        adapted=len(deltas),
        size_bytes=out_file.stat().st_size,
        seconds=time.perf_counter() - started,
    )
