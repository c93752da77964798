"""The model of a config, built on the meta device (no memory, no weights read) with the tuning method applied.

The method is applied by the same `prepare_model` training uses, so trainable parameters (LoRA and DoRA shapes,
freeze patterns, prompt encoders, modules_to_save, resized vocabularies) are counted by the code that creates
them, not by a second set of formulas. QLoRA counts as LoRA here; its 4-bit base is priced in memory.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.config.methods import method_spec
from lmforge.config.schema import RunConfig


@dataclass
class ModelShape:
    hidden: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    intermediate: int
    vocab: int
    total_params: int
    trainable_params: int
    bytes_by_dtype: dict[str, int]  # parameter bytes as they will be held
    trainable_bytes: int
    linear_base_params: int  # frozen weights of the decoder's linear layers (what QLoRA quantises)
    head_trainable_params: int  # output head / tied embedding params that get a gradient first in backward
    largest_layer_params: int  # ZeRO-3 gathers one layer at a time
    largest_linear_params: int  # QLoRA dequantises one linear weight at a time
    adapter_rank_sum: int  # sum over adapted linears in one layer of their rank (LoRA B inputs are saved)
    dora_weight_params: int  # DoRA recomputes ||W + BA|| per adapted linear: weight-sized buffers per layer
    adapter_params: int = 0  # parameters the method added (not in the base model)
    matmul_params: int = 0  # weights that run as matmuls per token (input embedding lookups excluded)
    trainable_matrices: list[tuple[int, ...]] = field(default_factory=list)


def _meta_model(cfg: RunConfig, dtype: torch.dtype, vocab_rows: int) -> Any:
    from transformers import AutoConfig, AutoModelForCausalLM

    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import resize_embeddings

    config = AutoConfig.from_pretrained(cfg.model.name_or_path, trust_remote_code=cfg.model.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    resize_embeddings(model, vocab_rows, cfg.model.resize_vocab_multiple)
    unquantised = method_spec(cfg.method.name).quantised_variant_of  # qlora is priced as lora on a meta model
    method = dataclasses.replace(cfg.method, name=unquantised) if unquantised else cfg.method
    return prepare_model(model, method, cfg.model)


def _tied(model: Any) -> bool:
    return model.get_output_embeddings().weight is model.get_input_embeddings().weight


def model_shape(cfg: RunConfig, dtype: torch.dtype, vocab_rows: int) -> ModelShape:
    model = _meta_model(cfg, dtype, vocab_rows)
    config = model.config
    seen: set[int] = set()
    params = []
    for name, param in model.named_parameters():
        if id(param) not in seen:
            seen.add(id(param))
            params.append((name, param))
    bytes_by_dtype: dict[str, int] = {}
    for _, p in params:
        key = str(p.dtype).removeprefix("torch.")
        bytes_by_dtype[key] = bytes_by_dtype.get(key, 0) + p.numel() * p.element_size()
    trainable = [(n, p) for n, p in params if p.requires_grad]
    linear_base = sum(
        p.numel() for n, p in params if not p.requires_grad and p.dim() == 2 and ".layers." in n and "embed" not in n
    )
    output = model.get_output_embeddings().weight
    head = output.numel() if output.requires_grad else 0
    layer_sizes: dict[str, int] = {}
    for name, p in params:
        if ".layers." in name:
            key = name.split(".layers.")[0] + ".layers." + name.split(".layers.")[1].split(".")[0]
            layer_sizes[key] = layer_sizes.get(key, 0) + p.numel()
    first_layer = ".layers.0."
    ranks = sum(p.shape[0] for n, p in trainable if first_layer in n and "lora_A" in n)
    dora = sum(p.numel() for n, p in params if first_layer in n and "base_layer.weight" in n)
    dora = dora if any("lora_magnitude_vector" in n for n, _ in trainable) else 0
    heads = config.num_attention_heads
    return ModelShape(
        hidden=config.hidden_size,
        layers=config.num_hidden_layers,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        intermediate=getattr(config, "intermediate_size", 4 * config.hidden_size),
        vocab=model.get_output_embeddings().weight.shape[0],
        total_params=sum(p.numel() for _, p in params),
        trainable_params=sum(p.numel() for _, p in trainable),
        bytes_by_dtype=bytes_by_dtype,
        trainable_bytes=sum(p.numel() * p.element_size() for _, p in trainable),
        linear_base_params=linear_base,
        head_trainable_params=head,
        largest_layer_params=max(layer_sizes.values(), default=0),
        largest_linear_params=max((p.numel() for n, p in params if p.dim() == 2 and ".layers." in n), default=0),
        adapter_rank_sum=ranks,
        dora_weight_params=dora,
        adapter_params=sum(p.numel() for n, p in params if "lora_" in n or "prompt_encoder" in n),
        matmul_params=sum(p.numel() for n, p in params if p.dim() == 2 and "embed_tokens" not in n)
        + (model.get_output_embeddings().weight.numel() if _tied(model) else 0),
        trainable_matrices=[tuple(p.shape) for _, p in trainable],
    )
