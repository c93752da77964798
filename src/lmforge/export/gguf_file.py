"""Write one GGUF file: tensors in the requested type, hyper-parameters, tokenizer and provenance metadata.

Type rules follow llama.cpp's converter: 1-D tensors (norms, biases) stay F32; block-quantised types need rows
that are a multiple of the block size (32) and fall back to F16 otherwise. For q4_0 the token embedding and the
output head are written as Q8_0 (llama-quantize also keeps them at higher precision: they dominate the error).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lmforge import __version__
from lmforge.export.gguf_arch import GGUFArch, add_hparams, named_tensors, to_gguf_layout
from lmforge.export.gguf_tokenizer import add_tokenizer

GGUF_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0")
HIGH_PRECISION_TENSORS = ("token_embd.weight", "output.weight")


@dataclass(frozen=True)
class Provenance:
    """`general.*` keys: what the file was made from."""

    name: str
    base: str
    adapter: str | None = None
    template: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


def tensor_type_counts(path: Path) -> dict[str, int]:
    """How many tensors of each type a GGUF file holds."""
    import gguf

    counts: dict[str, int] = {}
    for tensor in gguf.GGUFReader(str(path)).tensors:
        counts[tensor.tensor_type.name] = counts.get(tensor.tensor_type.name, 0) + 1
    return counts


def _types(kind: str) -> tuple[Any, Any]:
    """(tensor type, file type) for a --gguf-type."""
    import gguf

    q, f = gguf.GGMLQuantizationType, gguf.LlamaFileType
    return {
        "f32": (q.F32, f.ALL_F32),
        "f16": (q.F16, f.MOSTLY_F16),
        "bf16": (q.BF16, f.MOSTLY_BF16),
        "q8_0": (q.Q8_0, f.MOSTLY_Q8_0),
        "q4_0": (q.Q4_0, f.MOSTLY_Q4_0),
    }[kind]


def tensor_type(name: str, data: np.ndarray, kind: str) -> Any:
    import gguf

    q = gguf.GGMLQuantizationType
    wanted = _types(kind)[0]
    if data.ndim < 2 or wanted == q.F32:
        return q.F32
    if wanted == q.Q4_0 and name in HIGH_PRECISION_TENSORS:
        wanted = q.Q8_0
    block = gguf.GGML_QUANT_SIZES[wanted][0]
    if data.shape[-1] % block:
        return q.F16
    return wanted


def rounded(data: np.ndarray, qtype: Any) -> np.ndarray:
    """`data` after a round trip through `qtype`: what a GGUF reader dequantises (used as the reference)."""
    import gguf

    return gguf.quants.dequantize(encode(data, qtype), qtype).reshape(data.shape).astype(np.float32)


def encode(data: np.ndarray, qtype: Any) -> np.ndarray:
    import gguf

    q = gguf.GGMLQuantizationType
    if qtype == q.F32:
        return data.astype(np.float32)
    if qtype == q.F16:
        return data.astype(np.float16)
    return gguf.quants.quantize(data.astype(np.float32), qtype)


def write_gguf(
    path: Path,
    model: Any,
    tokenizer: Any,
    arch: GGUFArch,
    kind: str,
    stop_ids: list[int],
    chat_template: str | None,
    provenance: Provenance,
    permute: bool = True,
) -> dict[str, int]:
    """Write the file; returns how many tensors got each type (e.g. {"Q4_0": 14, "Q8_0": 2, "F32": 5}), as read
    back from the file."""
    import gguf

    writer = gguf.GGUFWriter(str(path), arch.name)
    writer.add_type(gguf.GGUFType.MODEL)
    writer.add_name(provenance.name)
    writer.add_file_type(_types(kind)[1])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_base_model_count(1)
    writer.add_base_model_name(0, provenance.base)
    writer.add_string("general.lmforge.version", __version__)
    if provenance.adapter:
        writer.add_string("general.lmforge.adapter", provenance.adapter)
    if provenance.template:
        writer.add_string("general.lmforge.template", provenance.template)
    for key, value in provenance.extra.items():
        writer.add_string(f"general.lmforge.{key}", value)
    add_hparams(writer, arch, model.config)
    add_tokenizer(writer, tokenizer, model.config.vocab_size, stop_ids, chat_template)
    for hf_name, name, data in named_tensors(model, arch):
        qtype = tensor_type(name, data, kind)
        writer.add_tensor(
            name, encode(to_gguf_layout(hf_name, data, arch, model.config, permute), qtype), raw_dtype=qtype
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return tensor_type_counts(path)
