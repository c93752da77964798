"""Hugging Face causal LMs -> GGUF tensors and hyper-parameters, per architecture, the way llama.cpp reads them.

Tensor names come from the `gguf` package's `TensorNameMap` (the table llama.cpp's own converter uses). What a
name table cannot say is written here per architecture:
  * llama-family q/k rows are permuted from HF's rotate-half RoPE layout to GGML's interleaved pairs
    (llama.cpp `LlamaModel.permute`); NeoX-RoPE architectures (qwen2/3, phi3, gemma2/3) keep HF's layout;
  * Gemma stores RMSNorm weights as w where it computes x * (1 + w); llama.cpp computes x * w, so 1 is added;
  * each architecture's hyper-parameter keys (`{arch}.embedding_length`, ...).
Only architectures whose export is verified by a reload test are listed; Mistral is llama in llama.cpp.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from lmforge.utils.errors import ConfigError


@dataclass(frozen=True)
class GGUFArch:
    """How one HF `model_type` is written: llama.cpp architecture name and the tensor fixes it needs."""

    name: str  # llama.cpp `general.architecture`
    permute_qk: bool = False  # rotate-half -> interleaved RoPE rows for q/k (llama family)
    norm_plus_one: bool = False  # Gemma RMSNorm stores w for x * (1 + w)
    extra_hparams: Callable[[Any, Any], None] | None = None  # (writer, config) -> None


def _gemma2_hparams(writer: Any, config: Any) -> None:
    if config.query_pre_attn_scalar != head_dim(config):  # llama.cpp scales scores by 1/sqrt(head_dim)
        raise ConfigError(
            f"GGUF export: gemma2 with query_pre_attn_scalar {config.query_pre_attn_scalar} != head_dim "
            f"{head_dim(config)} is not supported (llama.cpp would scale attention differently)"
        )
    writer.add_attn_logit_softcapping(config.attn_logit_softcapping or 0.0)
    writer.add_final_logit_softcapping(config.final_logit_softcapping or 0.0)
    writer.add_sliding_window(config.sliding_window)


ARCHS: dict[str, GGUFArch] = {
    "llama": GGUFArch("llama", permute_qk=True),
    "mistral": GGUFArch("llama", permute_qk=True),
    "qwen2": GGUFArch("qwen2"),
    "qwen3": GGUFArch("qwen3"),
    "phi3": GGUFArch("phi3"),
    "gemma2": GGUFArch("gemma2", norm_plus_one=True, extra_hparams=_gemma2_hparams),
}


def arch_for(config: Any) -> GGUFArch:
    model_type = getattr(config, "model_type", "")
    if model_type not in ARCHS:
        raise ConfigError(f"GGUF export supports model types {', '.join(sorted(ARCHS))}; this model is {model_type!r}")
    if _rope_type(config) not in ("default", None):
        raise ConfigError(
            f"GGUF export of models with RoPE scaling ({_rope_type(config)}) is not supported yet; the exported file "
            "would run with plain RoPE and differ from the trained model"
        )
    return ARCHS[model_type]


def _rope_type(config: Any) -> str | None:
    params = getattr(config, "rope_parameters", None) or {}
    return params.get("rope_type") if isinstance(params, dict) else None


def rope_theta(config: Any) -> float:
    params = getattr(config, "rope_parameters", None) or {}
    theta = params.get("rope_theta") if isinstance(params, dict) else None
    return float(theta if theta is not None else getattr(config, "rope_theta", 10000.0))


def head_dim(config: Any) -> int:
    return getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads


def add_hparams(writer: Any, arch: GGUFArch, config: Any) -> None:
    """The `{arch}.*` keys llama.cpp (and transformers' GGUF loader) rebuild the model config from."""
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(rope_theta(config))
    rotary = int(
        head_dim(config) * float((getattr(config, "rope_parameters", None) or {}).get("partial_rotary_factor", 1.0))
    )
    writer.add_rope_dimension_count(rotary)
    writer.add_key_length(head_dim(config))
    writer.add_value_length(head_dim(config))
    writer.add_vocab_size(config.vocab_size)
    if arch.extra_hparams is not None:
        arch.extra_hparams(writer, config)


def permute_rotary(weights: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate-half rows -> GGML interleaved rows (llama.cpp convert_hf_to_gguf `LlamaModel.permute`).

    Per head the rows [x0..x_{d/2-1}, y0..y_{d/2-1}] become [x0, y0, x1, y1, ...]."""
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def named_tensors(model: Any, arch: GGUFArch) -> list[tuple[str, str, np.ndarray]]:
    """(HF name, GGUF name, float32 array in HF layout) for every weight; a tied output head is listed once."""
    import gguf

    config = model.config
    arch_enum = next(key for key, value in gguf.MODEL_ARCH_NAMES.items() if value == arch.name)
    names = gguf.get_tensor_name_map(arch_enum, config.num_hidden_layers)
    tied = bool(getattr(config, "tie_word_embeddings", False))
    out = []
    for hf_name, tensor in model.state_dict().items():
        if tied and hf_name == "lm_head.weight":
            continue
        stem, _, suffix = hf_name.rpartition(".")
        gguf_name = names.get_name(stem)
        if gguf_name is None:
            raise ConfigError(f"GGUF export: no llama.cpp name for tensor {hf_name!r} of a {arch.name} model")
        out.append((hf_name, f"{gguf_name}.{suffix}", tensor.detach().float().cpu().numpy()))
    return out


def to_gguf_layout(hf_name: str, data: np.ndarray, arch: GGUFArch, config: Any, permute: bool = True) -> np.ndarray:
    """The array as llama.cpp expects it. `permute=False` skips the q/k permutation (negative-control tests only)."""
    if arch.permute_qk and permute and ".self_attn.q_proj." in hf_name:
        data = permute_rotary(data, config.num_attention_heads)
    elif arch.permute_qk and permute and ".self_attn.k_proj." in hf_name:
        data = permute_rotary(data, getattr(config, "num_key_value_heads", None) or config.num_attention_heads)
    if arch.norm_plus_one and hf_name.endswith("norm.weight"):
        data = data + 1.0
    return data
