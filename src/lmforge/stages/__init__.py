"""Training stages: one module per stage, each with `run(cfg, resume) -> metrics`, registered by name."""

from __future__ import annotations

from collections.abc import Callable

from lmforge.config.schema import RunConfig
from lmforge.stages import dpo, grpo, kto, orpo, ppo, pt, rm, sft, simpo
from lmforge.utils.registry import Registry

StageRun = Callable[[RunConfig, bool], dict[str, float]]

STAGES: Registry[StageRun] = Registry("stage")
STAGES.register("pt", pt.run)
STAGES.register("sft", sft.run)
STAGES.register("grpo", grpo.run)
STAGES.register("ppo", ppo.run)
STAGES.register("rm", rm.run)
STAGES.register("dpo", dpo.run)
STAGES.register("kto", kto.run)
STAGES.register("orpo", orpo.run)
STAGES.register("simpo", simpo.run)
