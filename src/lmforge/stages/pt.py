"""Continued pretraining: plain text cut into cutoff_len blocks, loss on every token.

tokenizer -> text blocks -> model -> tuning method -> Trainer -> final adapter/model + eval perplexity
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig
from lmforge.training.run import build_trainer, train_and_save


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.data.pipeline import build_datasets
    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import load_model, load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    data = build_datasets(cfg, tokenizer, None)  # no chat template: documents are encoded as they are

    model = load_model(cfg.model, tokenizer, cfg.method)
    model = prepare_model(model, cfg.method, cfg.model)  # logs the trainable parameter count

    trainer = build_trainer(cfg, args, model, tokenizer, data, token_metrics=False)
    return train_and_save(trainer, cfg, resume)
