"""Run options as a new user writes them: `eval_strategy: no` means no evaluation, the final one included."""

from __future__ import annotations

import pytest

from lmforge.train import run_training
from tests.integration.runs import QA_PAIRS, load, write_alpaca, write_config

pytestmark = pytest.mark.slow


@pytest.mark.parametrize(("strategy", "evaluates"), [("no", False), ("steps", True)])
def test_eval_strategy_no_skips_the_final_evaluation(tmp_path, tiny_model_dir, strategy, evaluates):
    data = write_alpaca(tmp_path / "qa.json", QA_PAIRS)
    train = {"max_steps": 2, "eval_steps": 100, "save_strategy": "no"}
    config = write_config(tmp_path, tiny_model_dir, data, data={"val_size": 0.25}, train=train)
    metrics = run_training(load(config, f"train.eval_strategy={strategy}"), resume=False)
    assert ("eval_loss" in metrics) is evaluates
    assert (tmp_path / "out" / "eval_results.json").exists() is evaluates
