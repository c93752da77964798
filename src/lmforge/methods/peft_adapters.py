"""Other additive/multiplicative adapters through PEFT: IA3, LoHa, LoKr, AdaLoRA, VeRA, OFT.

They share the LoRA keys where the meaning is the same (lora_rank, lora_alpha, lora_dropout, lora_target,
modules_to_save), so switching method is a one-word change. All of them save the standard PEFT adapter folder and
merge into the base weights for export.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods.lora import _check_modules_to_save, lora_alpha, lora_targets
from lmforge.methods.method_hooks import MethodHooks, peft_task_type
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

# IA3 scales the *input* of feed-forward output projections (their activations), the output of the others.
FEEDFORWARD_NAMES = {"down_proj", "fc2", "w2", "dense_4h_to_h", "c_proj"}
# AdaLoRA's schedule, as fractions of the run's optimizer steps (set when training starts by AdaLoraCallback)
ADALORA_TINIT, ADALORA_TFINAL = 0.1, 0.2
ADALORA_PLACEHOLDER_STEPS = 1000  # PEFT refuses total_step None; the real count is set at train begin


def _shared(model: Any, method_cfg: MethodConfig) -> dict[str, Any]:
    _check_modules_to_save(model, method_cfg.modules_to_save)
    return {
        "task_type": peft_task_type(model),
        "target_modules": lora_targets(model, method_cfg.lora_target),
        "modules_to_save": list(method_cfg.modules_to_save) or None,
    }


def prepare_ia3(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """IA3 learns one scaling vector per targeted layer; `all` uses PEFT's per-architecture default layers."""
    from peft import IA3Config, get_peft_model

    shared = _shared(model, method_cfg)
    if shared["target_modules"] == "all-linear":
        shared["target_modules"] = None  # PEFT's default (k, v and the MLP down projection) for known architectures
        feedforward = None
    else:
        feedforward = [n for n in shared["target_modules"] if n in FEEDFORWARD_NAMES]
    return get_peft_model(model, IA3Config(**shared, feedforward_modules=feedforward))


def _low_rank_product(config_cls: Any, model: Any, method_cfg: MethodConfig) -> Any:
    """LoHa and LoKr (Hadamard and Kronecker products of low-rank factors) take the same options."""
    from peft import get_peft_model

    config = config_cls(
        **_shared(model, method_cfg),
        r=method_cfg.lora_rank,
        alpha=lora_alpha(method_cfg),  # PEFT says int; any float works
        module_dropout=method_cfg.lora_dropout,
    )
    return get_peft_model(model, config)


def prepare_loha(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    from peft import LoHaConfig

    return _low_rank_product(LoHaConfig, model, method_cfg)


def prepare_lokr(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    from peft import LoKrConfig

    return _low_rank_product(LoKrConfig, model, method_cfg)


def prepare_adalora(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """AdaLoRA starts at rank lora_rank and prunes to adalora_target_rank on average; its schedule needs the total
    step count, which `AdaLoraCallback` sets at train begin, and its update hook, which the callback calls."""
    from peft import AdaLoraConfig, get_peft_model

    config = AdaLoraConfig(
        **_shared(model, method_cfg),
        init_r=method_cfg.lora_rank,
        target_r=method_cfg.adalora_target_rank,
        lora_alpha=lora_alpha(method_cfg),  # type: ignore[arg-type]  # PEFT says int; any float works
        lora_dropout=method_cfg.lora_dropout,
        total_step=ADALORA_PLACEHOLDER_STEPS,
    )
    return get_peft_model(model, config)


def adalora_hooks(method_cfg: MethodConfig, model: Any, args: Any, policy: Any) -> MethodHooks:
    return MethodHooks(callbacks=[AdaLoraCallback()])


class AdaLoraCallback(TrainerCallback):
    """Give AdaLoRA the run's real step count, then call its budget allocation after every optimizer step.

    PEFT documents the order: backward, optimizer.step, update_and_allocate(step), zero_grad; `on_optimizer_step`
    runs right after optimizer.step while the gradients (its importance scores) are still there."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        config = _adalora_model(model).peft_config["default"]
        total = max(int(state.max_steps), 1)
        config.total_step = total
        config.tinit = int(ADALORA_TINIT * total)
        config.tfinal = int(ADALORA_TFINAL * total)
        logger.info("adalora: %d steps, rank budget from step %d to %d", total, config.tinit, total - config.tfinal)

    def on_optimizer_step(self, args, state, control, model=None, **kwargs):
        _adalora_model(model).update_and_allocate(state.global_step)


def _adalora_model(model: Any) -> Any:
    """The AdaLoraModel inside the (possibly DDP-wrapped) PeftModel."""
    model = getattr(model, "module", model)
    return model.base_model


def prepare_vera(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """VeRA: frozen random projections shared by all layers, trained scaling vectors (tiny trainable count)."""
    from peft import VeraConfig, get_peft_model

    config = VeraConfig(**_shared(model, method_cfg), r=method_cfg.lora_rank, vera_dropout=method_cfg.lora_dropout)
    return get_peft_model(model, config)


def prepare_oft(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """OFT: block-diagonal orthogonal rotations of the weights (oft_block_size must divide the layer widths)."""
    from peft import OFTConfig, get_peft_model

    config = OFTConfig(**_shared(model, method_cfg), r=0, oft_block_size=method_cfg.oft_block_size)
    return get_peft_model(model, config)
