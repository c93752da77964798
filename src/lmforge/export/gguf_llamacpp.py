"""llama.cpp itself, through llama-cpp-python (optional extra `lmforge[llamacpp]`): the real consumer of the file.

When installed, the export also checks the file with llama.cpp's own tokenizer (pre-tokenizer chosen from
`tokenizer.ggml.pre`) and forward pass, and can write k-quants through its quantizer, which the pure-Python
`gguf` package cannot (its k-quant code is dequantise-only).
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path
from typing import Any

import numpy as np

from lmforge.utils.errors import ConfigError

#: --gguf-type -> llama.cpp file type of the quantizer (llama.h LLAMA_FTYPE_MOSTLY_*)
K_QUANTS = {"q4_k_m": 15, "q5_k_m": 17, "q6_k": 18}
#: llama.cpp logits vs the reference, max abs diff / max abs logit. llama.cpp keeps its KV cache in f16 and, on
#: CPU, quantises activations to 8 bits for quantised matmuls; measured on the tiny models (docs/export.md):
#: f32 2e-4, f16 4e-4, bf16 2.5e-3, q8_0 8.6e-3, q4_0 6.5e-3.
LLAMACPP_TOLERANCE = {"f32": 2e-3, "f16": 2e-3, "bf16": 1e-2, "q8_0": 3e-2, "q4_0": 3e-2}
KQUANT_LLAMACPP_TOLERANCE = 5e-2  # vs transformers' dequantisation of the same k-quant file


def installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def require() -> None:
    if not installed():
        raise ConfigError(
            "k-quant GGUF types (q4_k_m, q5_k_m, q6_k) need llama.cpp's quantizer: pip install 'lmforge[llamacpp]' "
            "(builds llama.cpp from source, about 7 minutes on 2 cores)"
        )


def _load(path: Path, vocab_only: bool = False) -> Any:
    import llama_cpp

    return llama_cpp.Llama(
        model_path=str(path), n_ctx=128, logits_all=True, vocab_only=vocab_only, verbose=False, n_threads=2
    )


def tokenize(path: Path, texts: list[str]) -> list[list[int]]:
    """llama.cpp's tokenisation of each text (no BOS, special tokens matched as text like the HF tokenizer)."""
    model = _load(path, vocab_only=True)
    try:
        return [model.tokenize(text.encode("utf-8"), add_bos=False, special=True) for text in texts]
    finally:
        model.close()


def logits(path: Path, ids: list[int]) -> np.ndarray:
    """llama.cpp's logits for every position of one sequence, shape (len(ids), vocab)."""
    model = _load(path)
    try:
        model.eval(ids)
        return np.array(model.scores[: len(ids)], dtype=np.float32)
    finally:
        model.close()


def quantize(source: Path, target: Path, kind: str) -> None:
    """llama.cpp's `llama-quantize` on a written GGUF; tensors whose rows are not a multiple of 256 fall back to
    a legacy type, as llama-quantize does."""
    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = K_QUANTS[kind]
    params.nthread = 2
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(target).encode(), ctypes.byref(params))
    if status != 0 or not target.is_file():
        raise ConfigError(f"llama.cpp could not quantise {source.name} to {kind} (status {status})")
