"""Building blocks the preference stages share: data, policy + reference, objective and trainer."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from transformers import TrainingArguments

from lmforge.alignment.objectives import OBJECTIVES, Objective
from lmforge.alignment.preference_trainer import PreferenceTrainer
from lmforge.alignment.reference import Reference, adapter_reference, frozen_copy_reference, precompute_reference_logps
from lmforge.config.schema import RunConfig
from lmforge.training.run import store_chat_template, train_and_save, trainer_hooks
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def load_preference_data(cfg: RunConfig) -> tuple[Any, Any, Any]:
    """(tokenizer, template, datasets): pairs or KTO examples encoded with the sft template and masking."""
    from lmforge.data.pipeline import build_datasets
    from lmforge.models.model_loading import load_tokenizer
    from lmforge.templates import get_template

    tokenizer = load_tokenizer(cfg.model)
    template = get_template(cfg.data.template, tokenizer, cfg.data.template_options)
    store_chat_template(tokenizer, template, cfg.data.template)
    return tokenizer, template, build_datasets(cfg, tokenizer, template)


def load_policy(cfg: RunConfig, tokenizer: Any, needs_reference: bool) -> tuple[Any, Reference | None]:
    """The policy with its tuning method applied, and its reference (None for reference-free objectives)."""
    from lmforge.config.methods import method_spec
    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import load_model

    model = load_model(cfg.model, tokenizer, cfg.method)  # qlora: base weights quantised while loading
    frozen = None
    if needs_reference and method_spec(cfg.method.name).reference == "frozen_copy":
        if cfg.pref.reference_model:
            ref_cfg = dataclasses.replace(
                cfg.model, name_or_path=cfg.pref.reference_model, gradient_checkpointing=False
            )
            frozen = load_model(ref_cfg, tokenizer)
        else:
            frozen = copy.deepcopy(model)  # the initial policy, before any update
    model = prepare_model(model, cfg.method, cfg.model)
    if not needs_reference:
        return model, None
    if frozen is not None:
        reference = frozen_copy_reference(frozen)
    else:
        reference = adapter_reference(model, cfg.model.adapter_name_or_path)
    logger.info("reference model: %s", reference.description)
    return model, reference


def with_reference_logps(cfg: RunConfig, data: Any, objective: Objective, reference: Reference | None) -> Any:
    """With `pref.precompute_ref_log_probs`, compute them once, store them in the datasets and drop a frozen copy."""
    if not cfg.pref.precompute_ref_log_probs or reference is None:
        return data
    batch = int(cfg.train.get("per_device_eval_batch_size") or cfg.train.get("per_device_train_batch_size", 8))
    data.train = precompute_reference_logps(data.train, reference, objective.collate, batch, objective.ref_columns)
    if data.eval is not None:
        data.eval = precompute_reference_logps(data.eval, reference, objective.collate, batch, objective.ref_columns)
    objective.reference = None  # frees the frozen copy (full/freeze); lora keeps no copy anyway
    return data


def build_preference_trainer(
    cfg: RunConfig, args: TrainingArguments, model: Any, tokenizer: Any, data: Any, objective: Objective
) -> PreferenceTrainer:
    return PreferenceTrainer(
        model=model,
        train_dataset=data.train,
        eval_dataset=data.eval,
        data_collator=objective.collate,
        processing_class=tokenizer,
        objective=objective,
        **trainer_hooks(cfg, model, args),
    )


def make_objective(cfg: RunConfig, reference: Reference | None) -> Objective:
    return OBJECTIVES[cfg.stage](cfg.pref, reference)


def run_reference_free(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    """orpo and simpo: pairs -> policy (no reference model) -> the stage's objective -> train and save."""
    tokenizer, _, data = load_preference_data(cfg)
    model, _ = load_policy(cfg, tokenizer, needs_reference=False)
    trainer = build_preference_trainer(cfg, args, model, tokenizer, data, make_objective(cfg, None))
    return train_and_save(trainer, cfg, resume)
