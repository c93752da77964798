"""Tuning methods: which parameters train (full, freeze, LoRA family, prompt methods, other PEFT adapters),
applied by `prepare_model`; docs/methods.md compares them."""

from __future__ import annotations

from typing import Any

from lmforge.config.methods import method_spec
from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def prepare_model(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Apply the configured method (its row in the method table names the function) and log how many parameters
    will train."""
    model = method_spec(method_cfg.name).load("prepare")(model, method_cfg, model_cfg)
    if method_cfg.neftune_alpha:
        from lmforge.methods.neftune import add_neftune

        add_neftune(model, method_cfg.neftune_alpha)
        logger.info("NEFTune: embedding noise alpha %g, scaled per sample (training only)", method_cfg.neftune_alpha)
    embeddings_frozen = not model.get_input_embeddings().weight.requires_grad
    if _is_checkpointing(model) and embeddings_frozen:
        # Checkpointed blocks need an input that requires grad when run reentrantly; harmless otherwise.
        model.enable_input_require_grads()
    trainable, total = count_parameters(model)
    logger.info(format_parameter_count(trainable, total))
    return model


def _is_checkpointing(model: Any) -> bool:
    # recent transformers 5 releases renamed is_gradient_checkpointing (the old name warns)
    new_name = "is_activation_checkpointing"
    return bool(getattr(model, new_name if hasattr(model, new_name) else "is_gradient_checkpointing", False))


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts; tied weights count once, 4-bit packed weights count unpacked."""
    params = list(model.parameters())
    return sum(_numel(p) for p in params if p.requires_grad), sum(_numel(p) for p in params)


def _numel(param: Any) -> int:
    if type(param).__name__ == "Params4bit":  # bitsandbytes packs 2 four-bit values per storage byte
        return param.numel() * 2 * param.quant_storage.itemsize
    return int(param.numel())


def format_parameter_count(trainable: int, total: int) -> str:
    share = 100 * trainable / total if total else 0.0
    return f"trainable params: {trainable:,} || all params: {total:,} || trainable%: {share:.4f}"


__all__ = ["count_parameters", "format_parameter_count", "prepare_model"]
