"""What some methods need from the training loop: AdaLoRA's rank-allocation hook, LoRA+'s optimizer groups.

Both are plain Trainer extension points (a callback, the `optimizers=` argument), so LmforgeTrainer's sealed
checkpoints and resume keep working unchanged.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback

from lmforge.config.schema import MethodConfig
from lmforge.methods.peft_adapters import ADALORA_TFINAL, ADALORA_TINIT
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


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


def method_callbacks(method_cfg: MethodConfig) -> list[TrainerCallback]:
    return [AdaLoraCallback()] if method_cfg.name == "adalora" else []


def method_optimizers(method_cfg: MethodConfig, model: Any, args: Any) -> tuple[Any, Any]:
    """(optimizer, scheduler) for the Trainer: LoRA+ groups when asked, else (None, None) = Trainer's default.

    LoRA+ (Hayou et al. 2024) trains B with lr x loraplus_lr_ratio; the optimizer class and its arguments are the
    ones `train.optim` selects, so LoRA+ composes with adamw_torch, adamw_8bit, etc."""
    if method_cfg.loraplus_lr_ratio is None:
        return None, None
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    if "optim_target_modules" in str(args.optim) or "galore" in str(args.optim):
        raise ConfigError("method.loraplus_lr_ratio cannot be combined with train.optim: galore_* (both set groups)")
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    optimizer = create_loraplus_optimizer(
        model,
        optimizer_cls,
        lr=args.learning_rate,
        loraplus_lr_ratio=method_cfg.loraplus_lr_ratio,
        loraplus_weight_decay=args.weight_decay,
        **kwargs,
    )
    logger.info("LoRA+: lr %g for A, %g for B", args.learning_rate, args.learning_rate * method_cfg.loraplus_lr_ratio)
    return optimizer, None
