"""Stage orpo: odds-ratio preference optimisation (reference-free; SFT loss + odds-ratio term).

tokenizer -> template -> pairs -> policy -> PreferenceTrainer -> final adapter/model + metrics (see docs/alignment.md)
"""

from __future__ import annotations

from lmforge.config.schema import RunConfig


def run(cfg: RunConfig, resume: bool) -> dict[str, float]:
    from lmforge.alignment import setup

    tokenizer, _, data = setup.load_preference_data(cfg)
    model, _ = setup.load_policy(cfg, tokenizer, needs_reference=False)
    objective = setup.make_objective(cfg, None)

    trainer = setup.build_preference_trainer(cfg, model, tokenizer, data, objective)
    return setup.train_and_save(trainer, cfg, resume)
