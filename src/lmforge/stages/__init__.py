"""Training stages: one module per stage, each with `run(cfg, resume) -> metrics`, registered by name."""

from __future__ import annotations

from collections.abc import Callable

from lmforge.config.schema import RunConfig
from lmforge.stages import grpo, ppo, pt, sft
from lmforge.utils.registry import Registry

StageRun = Callable[[RunConfig, bool], dict[str, float]]

STAGES: Registry[StageRun] = Registry("stage")
STAGES.register("pt", pt.run)
STAGES.register("sft", sft.run)
STAGES.register("grpo", grpo.run)
STAGES.register("ppo", ppo.run)
