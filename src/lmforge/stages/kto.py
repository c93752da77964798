"""Stage kto: Kahneman-Tversky optimisation on unpaired desirable/undesirable examples, against a reference.

tokenizer -> template -> pairs/examples -> policy + reference (adapter-disabled, SFT adapter, frozen copy, or
precomputed log-probs) -> PreferenceTrainer -> final adapter/model + metrics (see docs/alignment.md)
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.training.run import train_and_save


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.alignment import preference_setup as setup
    from lmforge.alignment.batches import add_kl_samples

    tokenizer, _, data = setup.load_preference_data(cfg)
    model, reference = setup.load_policy(cfg, tokenizer, needs_reference=True)
    objective = setup.make_objective(cfg, reference)
    data.train = add_kl_samples(data.train)  # fixed mismatched partners for the KL estimate
    if data.eval is not None:
        data.eval = add_kl_samples(data.eval)
    data = setup.with_reference_logps(cfg, data, objective, reference)

    trainer = setup.build_preference_trainer(cfg, args, model, tokenizer, data, objective)
    return train_and_save(trainer, cfg, resume)
