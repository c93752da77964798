"""Assemble an online-RL run: prompts, reward sources, policy (tuning method applied), reference, trainer.

Reward sources are built before any model loads, so a reward callable that cannot be imported or a judge
without its API key fails in seconds, naming the config key.
"""

from __future__ import annotations

from typing import Any

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.config.stages import stage_spec
from lmforge.rl.rollout_trainer import RolloutTrainer, prompt_collator
from lmforge.training.run import store_chat_template, trainer_hooks
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)


def load_reference(cfg: RunConfig, tokenizer: Any) -> Any | None:
    """The KL reference: None when the policy is a fresh adapter (the adapter-disabled policy is the reference),
    otherwise a frozen copy of the starting model (full/freeze, or base + the adapter training continues from)."""
    from lmforge.config.methods import method_spec
    from lmforge.models.model_loading import load_model

    if method_spec(cfg.method.name).reference == "adapter_disabled" and not cfg.model.adapter_name_or_path:
        logger.info("reference model: the policy with its adapter disabled")
        return None
    reference = load_model(cfg.model, tokenizer)
    if cfg.model.adapter_name_or_path:
        from peft import PeftModel

        reference = PeftModel.from_pretrained(reference, cfg.model.adapter_name_or_path, is_trainable=False)
    reference.eval()
    reference.requires_grad_(False)
    logger.info("reference model: a frozen copy of the starting model")
    return reference


def build_rl_trainer(
    cfg: RunConfig, args: TrainingArguments, trainer_cls: type[RolloutTrainer], wrap: Any = None
) -> RolloutTrainer:
    """The stage's trainer over the prompt dataset; `wrap(policy)` turns the policy into the trained module."""
    from lmforge.data.rl_prompts import build_prompt_datasets
    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import load_model, load_tokenizer
    from lmforge.rl.rewards import build_reward_sources
    from lmforge.templates import get_template

    tokenizer = load_tokenizer(cfg.model)
    template = get_template(cfg.data.template, tokenizer, cfg.data.template_options)
    store_chat_template(tokenizer, template, cfg.data.template)
    sources = build_reward_sources(cfg.rl, tokenizer, template)
    data = build_prompt_datasets(cfg, tokenizer, template)

    policy = prepare_model(load_model(cfg.model, tokenizer, cfg.method), cfg.method, cfg.model)
    policy.config.use_cache = True  # generation inside the step; the training forward passes use_cache=False
    uses_reference = stage_spec(cfg.stage).needs_reference(cfg.rl.beta)
    reference = load_reference(cfg, tokenizer) if uses_reference else None
    model = wrap(policy) if wrap is not None else policy
    return trainer_cls(
        model=model,
        train_dataset=data.train,
        data_collator=prompt_collator,
        processing_class=tokenizer,
        **trainer_hooks(cfg, model, args, policy=policy),
        rl=cfg.rl,
        template=template,
        reward_sources=sources,
        ref_model=reference,
    )
