"""The table of tuning methods: name -> function that makes the right parameters trainable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.utils.registry import Registry

#: prepare(model, method_cfg, model_cfg) -> the model to train (possibly wrapped, e.g. a PeftModel)
MethodFn = Callable[[Any, MethodConfig, ModelConfig], Any]

METHODS: Registry[MethodFn] = Registry("tuning method")
