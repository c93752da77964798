"""Stage rm: a reward model (backbone + scalar score head) trained on preference pairs with -logsig(r_c - r_r).

tokenizer -> template -> pairs -> *ForSequenceClassification(num_labels=1) -> tuning method (the score head always
trains) -> PreferenceTrainer (pairwise accuracy on eval) -> model/adapter folder + reward_model.json, loadable by
`lmforge.models.reward.load_reward_model` and by plain transformers/peft.
"""

from __future__ import annotations

import dataclasses

from transformers import TrainingArguments

from lmforge.config.methods import method_spec
from lmforge.config.schema import MethodConfig, RunConfig
from lmforge.training.run import train_and_save

SCORE_HEAD = "score"


def reward_method(method: MethodConfig) -> MethodConfig:
    """The configured method with the new score head trainable: freeze lists it as an extra module (full trains
    everything; PEFT's sequence-classification wrapper puts it in modules_to_save itself)."""
    if method_spec(method.name).kind == "partial":
        return dataclasses.replace(method, freeze_extra_modules=[*method.freeze_extra_modules, SCORE_HEAD])
    return method


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.alignment import preference_setup as setup
    from lmforge.methods import prepare_model
    from lmforge.models.reward import as_sequence_classifier, load_reward_backbone, write_reward_info

    tokenizer, _, data = setup.load_preference_data(cfg)
    model = load_reward_backbone(cfg.model, tokenizer, cfg.method)
    model = as_sequence_classifier(prepare_model(model, reward_method(cfg.method), cfg.model))
    objective = setup.make_objective(cfg, None)

    trainer = setup.build_preference_trainer(cfg, args, model, tokenizer, data, objective)
    metrics = train_and_save(trainer, cfg, resume)
    if trainer.is_world_process_zero():
        write_reward_info(cfg.output_dir, cfg.data.template)
    return metrics
