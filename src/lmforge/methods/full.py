"""Full fine-tuning: every parameter trains, kept in fp32 (mixed precision comes from autocast, not the weights)."""

from __future__ import annotations

from typing import Any

import torch

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def prepare(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Make everything trainable, in fp32."""
    for param in model.parameters():
        param.requires_grad_(True)
    upcast_trainable(model)
    return model


def upcast_trainable(model: Any) -> None:
    """Keep trainable weights in fp32 so small optimizer updates are not rounded away in bf16/fp16."""
    upcast = [p for p in model.parameters() if p.requires_grad and p.dtype != torch.float32]
    for param in upcast:
        param.data = param.data.float()
    if upcast:
        logger.info("upcast %d trainable tensors to fp32 master weights (train with bf16/fp16 autocast)", len(upcast))
