"""Run configuration: typed, frozen section dataclasses loaded from YAML plus `key=value` overrides."""

from lmforge.config.config_loading import load_config
from lmforge.config.schema import DataConfig, DatasetSpec, MethodConfig, ModelConfig, RunConfig

__all__ = ["DataConfig", "DatasetSpec", "MethodConfig", "ModelConfig", "RunConfig", "load_config"]
