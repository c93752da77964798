"""The table of tuning methods: name -> function that makes the right parameters trainable."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.utils.registry import Registry

#: prepare(model, method_cfg, model_cfg) -> the model to train (possibly wrapped, e.g. a PeftModel)
MethodFn = Callable[[Any, MethodConfig, ModelConfig], Any]

METHODS: Registry[MethodFn] = Registry("tuning method")


def peft_task_type(model: Any) -> str:
    """The PEFT task a model is wrapped for: a scalar-score model (stage rm) gets PEFT's sequence-classification
    wrapper, which has no generation head to look for and keeps the new `score` head trainable and saved."""
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"
