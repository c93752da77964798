"""Evaluation fixtures: a tiny llama (ChatML tokenizer) wrapped in a ChatEngine, fp32."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lmforge.inference.engine import ChatEngine
from lmforge.models.adapters import load_base_model, load_plain_tokenizer
from lmforge.templates import get_template

ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "examples" / "data" / "eval"


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> ChatEngine:
    tokenizer = load_plain_tokenizer(str(tiny_model_dir))
    model = load_base_model(str(tiny_model_dir), torch.float32)
    return ChatEngine(model, tokenizer, get_template("auto", tokenizer))
