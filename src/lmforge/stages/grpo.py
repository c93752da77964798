"""GRPO: online RL with group-relative advantages over rewards from callables, a reward model or an AI judge.

tokenizer -> template -> prompts -> reward sources -> policy (method) + reference -> GrpoTrainer -> outputs
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.training.run import train_and_save


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.rl.grpo_trainer import GrpoTrainer
    from lmforge.rl.rollout_setup import build_rl_trainer

    trainer = build_rl_trainer(cfg, args, GrpoTrainer)
    return train_and_save(trainer, cfg, resume)
