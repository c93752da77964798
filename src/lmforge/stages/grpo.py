"""GRPO: online RL with group-relative advantages over rewards from callables, a reward model or an AI judge.

tokenizer -> template -> prompts -> reward sources -> policy (method) + reference -> GrpoTrainer -> outputs
"""

from __future__ import annotations

from lmforge.config.schema import RunConfig
from lmforge.stages.common import train_and_save


def run(cfg: RunConfig, resume: bool) -> dict[str, float]:
    from lmforge.rl.grpo import GrpoTrainer
    from lmforge.rl.setup import build_rl_trainer

    trainer = build_rl_trainer(cfg, GrpoTrainer)
    return train_and_save(trainer, cfg, resume)
