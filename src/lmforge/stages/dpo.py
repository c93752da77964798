"""Stage dpo: direct preference optimisation (DPO / IPO / hinge) against a reference model.

tokenizer -> template -> pairs -> policy + reference (adapter-disabled, SFT adapter, frozen copy, or
precomputed log-probs) -> PreferenceTrainer -> final adapter/model + metrics (see docs/alignment.md)
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.training.run import train_and_save


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.alignment import preference_setup as setup

    tokenizer, _, data = setup.load_preference_data(cfg)
    model, reference = setup.load_policy(cfg, tokenizer, needs_reference=True)
    objective = setup.make_objective(cfg, reference)
    data = setup.with_reference_logps(cfg, data, objective, reference)

    trainer = setup.build_preference_trainer(cfg, args, model, tokenizer, data, objective)
    return train_and_save(trainer, cfg, resume)
