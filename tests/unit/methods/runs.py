"""Train a tiny model with one method through the real sft pipeline, keeping the trained model in memory."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lmforge.config import load_config
from lmforge.config.schema import PROMPT_METHODS
from lmforge.training.callbacks import read_log
from tests.integration.runs import QA_PAIRS, write_alpaca, write_config


@dataclass
class Run:
    """What a test needs from a finished run: the in-memory model, its output folder, logs."""

    model: Any
    output_dir: Path
    losses: list[float]
    messages: list[str] = field(default_factory=list)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def train_method(
    folder: Path, model_dir: Path, method: dict[str, Any], lr: float, steps: int = 30, model: dict | None = None
) -> Run:
    """`steps` optimizer steps of sft on the fixed Q/A pairs (batch 4), as `lmforge train` runs them."""
    from lmforge.data.pipeline import build_datasets
    from lmforge.methods import prepare_model
    from lmforge.models.model_loading import load_model, load_tokenizer
    from lmforge.templates import get_template
    from lmforge.training.arguments import build_training_arguments
    from lmforge.training.run import build_trainer, train_and_save
    from lmforge.training.run_dir import prepare_output_dir

    folder.mkdir(parents=True, exist_ok=True)
    data = write_alpaca(folder / "qa.json", QA_PAIRS)
    padded = {"padding_free": False} if method["name"] in PROMPT_METHODS else {}
    train = {"max_steps": steps, "learning_rate": lr, "lr_scheduler_type": "constant", "save_strategy": "no"}
    sections = {"method": method, "data": padded, "train": train, "model": model or {}}
    cfg = load_config(write_config(folder, model_dir, data, **sections))
    prepare_output_dir(cfg, resume=False, world_size=1)
    torch.manual_seed(0)
    handler = _Collect()
    logging.getLogger("lmforge").addHandler(handler)
    try:
        tokenizer = load_tokenizer(cfg.model)
        datasets = build_datasets(cfg, tokenizer, get_template(cfg.data.template, tokenizer))
        model = prepare_model(load_model(cfg.model, tokenizer, cfg.method), cfg.method, cfg.model)
        trainer = build_trainer(cfg, build_training_arguments(cfg), model, tokenizer, datasets, token_metrics=False)
        train_and_save(trainer, cfg, resume=False)
    finally:
        logging.getLogger("lmforge").removeHandler(handler)
    losses = [r["loss"] for r in read_log(cfg.output_dir) if "loss" in r]
    return Run(trainer.model.eval(), Path(cfg.output_dir), losses, handler.messages)


def fixed_batch(vocab: int = 480) -> dict[str, torch.Tensor]:
    """Two right-padded rows (the second shorter), as a padded batch reaches the model."""
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, vocab, (2, 10), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


@torch.no_grad()
def logits(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Logits of the real tokens only (prompt tuning returns the virtual positions first), padding zeroed."""
    out = model(**batch).logits.float()
    out = out[:, -batch["input_ids"].shape[1] :]
    return out * batch["attention_mask"].unsqueeze(-1)
