"""Load a tiny model, train it a few steps, and compare parameters before and after."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods import prepare_model
from lmforge.models.model_loading import load_model, load_tokenizer


def prepared(folder: Path, method: MethodConfig, **model_kw: Any) -> Any:
    cfg = ModelConfig(name_or_path=str(folder), **model_kw)
    return prepare_model(load_model(cfg, load_tokenizer(cfg)), method, cfg)


def trainable_names(model: Any) -> set[str]:
    return {n for n, p in model.named_parameters() if p.requires_grad}


def snapshot(model: Any) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def train_steps(model: Any, steps: int = 3) -> None:
    """A few Adam steps (no weight decay, so a zero gradient leaves a weight exactly unchanged) on a fixed batch."""
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 480, (2, 12), generator=generator)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    for _ in range(steps):
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
        optimizer.zero_grad()


def changed(before: dict[str, torch.Tensor], model: Any) -> set[str]:
    """Names of parameters that differ (bitwise) from the snapshot."""
    return {n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())}
