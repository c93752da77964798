"""Run options as a new user writes them: `eval_strategy: no` means no evaluation, the final one included;
the final weights are evaluated once, also when the last step was an evaluation step."""

from __future__ import annotations

import json

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


@pytest.mark.parametrize("eval_steps", [2, 100])
def test_final_weights_are_evaluated_exactly_once(tmp_path, tiny_model_dir, eval_steps):
    """An evaluation at the last step (eval_steps dividing max_steps) is the final one, not run again."""
    data = write_alpaca(tmp_path / "qa.json", QA_PAIRS)
    train = {"max_steps": 2, "eval_strategy": "steps", "eval_steps": eval_steps, "save_strategy": "no"}
    config = write_config(tmp_path, tiny_model_dir, data, data={"val_size": 0.25}, train=train)
    metrics = run_training(load(config), resume=False)
    history = json.loads((tmp_path / "out" / "trainer_state.json").read_text())["log_history"]
    evaluations = [entry for entry in history if "eval_loss" in entry]
    assert [entry["step"] for entry in evaluations] == [2]
    assert metrics["eval_loss"] == evaluations[0]["eval_loss"]
    assert "eval_perplexity" in json.loads((tmp_path / "out" / "eval_results.json").read_text())
