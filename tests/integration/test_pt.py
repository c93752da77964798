"""Continued pretraining: text becomes cutoff_len blocks, the loss goes down, and eval perplexity is reported."""

from __future__ import annotations

import json
import math

import pytest

from lmforge.data.pipeline import build_datasets
from lmforge.models.model_loading import load_tokenizer
from lmforge.train import run_training
from tests.integration.runs import REPO, load, step_log, write_config

pytestmark = pytest.mark.slow
CUTOFF = 64


def test_pt_trains_on_blocks_and_loss_decreases(tmp_path, tiny_model_dir):
    config = write_config(
        tmp_path,
        tiny_model_dir,
        REPO / "examples/data/wiki_demo.txt",
        stage="pt",
        data={"cutoff_len": CUTOFF, "max_samples": 6, "val_size": 4},
        method={"name": "full"},
        train={"max_steps": 30, "learning_rate": 3e-3, "per_device_eval_batch_size": 4},
    )
    cfg = load(config)
    blocks = build_datasets(cfg, load_tokenizer(cfg.model), None).train
    lengths = [len(row["input_ids"]) for row in blocks]
    assert len(blocks) > 8 and max(lengths) == CUTOFF and sum(n != CUTOFF for n in lengths) <= 1  # + a remainder

    metrics = run_training(cfg, resume=False)
    losses = [record["loss"] for _, record in sorted(step_log(tmp_path / "out").items())]
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert results["eval_perplexity"] == pytest.approx(math.exp(results["eval_loss"]))
    assert metrics["eval_perplexity"] == results["eval_perplexity"]
    assert (tmp_path / "out" / "training_loss.png").stat().st_size > 0
