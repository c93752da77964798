"""PPO: RLHF with a policy + value head, rewards from a reward model (stage rm), callables or an AI judge, and a
per-token KL penalty to the reference model (fixed or adaptive coefficient).

tokenizer -> template -> prompts -> reward sources -> policy (method) + value head + reference -> PpoTrainer
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.training.run import train_and_save


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.rl.ppo_trainer import PpoTrainer
    from lmforge.rl.rollout_setup import build_rl_trainer
    from lmforge.rl.value import PolicyWithValue

    trainer = build_rl_trainer(cfg, args, PpoTrainer, wrap=PolicyWithValue)
    return train_and_save(trainer, cfg, resume)
