"""ppo and grpo with each tuning method for a few steps: the KL reference equals the policy at step 1 (adapter
disabled for lora, a frozen copy for full/freeze), it stays fixed while the policy moves, and freeze trains only
its layers."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from lmforge.train import run_training
from lmforge.training.callbacks import read_log
from lmforge.utils.errors import ConfigError
from tests.integration.rl_runs import write_rl_config
from tests.integration.runs import load

pytestmark = pytest.mark.slow

METHODS = {
    "lora": {"name": "lora", "lora_rank": 4},
    "full": {"name": "full"},
    "freeze": {"name": "freeze", "freeze_trainable_layers": 1},
}
CASES = [("grpo", "lora"), ("grpo", "full"), ("grpo", "freeze"), ("ppo", "freeze")]


@pytest.mark.parametrize(("stage", "method"), CASES)
def test_reference_starts_equal_to_the_policy_and_the_run_trains(tmp_path, tiny_model_dir, stage, method):
    rl = {"num_generations": 4, "beta": 0.1, "kl_coef": 0.1}
    config = write_rl_config(
        tmp_path, tiny_model_dir, stage, method=METHODS[method], rl=rl, train={"max_steps": 3, "learning_rate": 1e-2}
    )
    run_training(load(config), resume=False)
    records = {r["step"]: r for r in read_log(tmp_path / "out") if "reward" in r}
    assert records[1]["kl"] == pytest.approx(0.0, abs=1e-6)  # sampled and scored before the first update
    assert records[3]["kl"] > 1e-6  # the policy moved away from a reference that did not move
    if method == "freeze":
        before = load_file(str(tiny_model_dir / "model.safetensors"))
        after = load_file(str(tmp_path / "out" / "model.safetensors"))
        changed = {name for name in before if not torch.equal(before[name], after[name])}
        assert changed and all(name.startswith("model.layers.1.") for name in changed)


@pytest.mark.parametrize(
    ("rl", "message"),
    [
        ({"reward_funcs": ["no_such_pkg.rewards:score"]}, r"rl\.reward_funcs\[0\]: cannot import module"),
        ({"reward_funcs": ["tests.integration.rl_rewards:needs_two_args"]}, "parameter 'threshold'"),
        (
            {
                "reward_funcs": [],
                "judge": {"base_url": "http://127.0.0.1:9/v1", "model": "j", "api_key_env": "NOPE_X"},
            },
            "environment variable NOPE_X is not set",
        ),
    ],
)
def test_reward_problems_stop_the_run_before_the_model_loads(tmp_path, tiny_model_dir, monkeypatch, rl, message):
    import lmforge.models.model_loading as loading

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the reward sources were checked")

    monkeypatch.setattr(loading, "load_model", no_model)
    monkeypatch.delenv("NOPE_X", raising=False)
    config = write_rl_config(tmp_path, tiny_model_dir, "grpo", rl=rl)
    with pytest.raises(ConfigError, match=message):
        run_training(load(config), resume=False)
