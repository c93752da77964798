"""Supervised fine-tuning: chat data encoded with a template, loss on assistant tokens only.

tokenizer -> template -> datasets -> model -> tuning method -> Trainer -> final adapter/model + metrics
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.training.run import build_trainer, store_chat_template, train_and_save


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.data.pipeline import build_datasets
    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import load_model, load_tokenizer
    from lmforge.templates import get_template

    tokenizer = load_tokenizer(cfg.model)
    template = get_template(cfg.data.template, tokenizer, cfg.data.template_options)
    store_chat_template(tokenizer, template, cfg.data.template)
    data = build_datasets(cfg, tokenizer, template)

    model = load_model(cfg.model, tokenizer, cfg.method)
    model = prepare_model(model, cfg.method, cfg.model)  # logs the trainable parameter count

    trainer = build_trainer(cfg, args, model, tokenizer, data, token_metrics=True)
    return train_and_save(trainer, cfg, resume)
