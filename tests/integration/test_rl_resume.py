"""RL runs SIGKILLed mid-run and resumed from their last sealed checkpoint equal the uninterrupted run (QUALITY
B1). PPO: policy adapter, value head, adaptive KL coefficient (rl_state.json) and every logged loss. Its rollouts
are reused for 2 steps (rl.ppo_epochs) and checkpoints fall on rollout boundaries, so the resumed run samples its
next rollout from the restored RNG state exactly where the uninterrupted one did."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tests.integration.rl_runs import DIGITS, write_rl_config
from tests.integration.runs import cli, final_weights, max_weight_diff, step_log

pytestmark = pytest.mark.slow

STEPS = 6


def _config(folder: Path, model_dir: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rl = {
        "reward_funcs": [{"func": DIGITS, "weight": 10.0}],
        "num_generations": 2,
        "ppo_epochs": 2,
        "adaptive_kl": True,
        "kl_horizon": 100,
    }
    train = {"max_steps": STEPS, "save_strategy": "steps", "save_steps": 2, "learning_rate": 1e-2}
    return write_rl_config(folder, model_dir, "ppo", method={"name": "lora", "lora_rank": 4}, rl=rl, train=train)


def test_ppo_resumes_after_sigkill_like_the_uninterrupted_run(tmp_path, tiny_model_dir):
    reference = _config(tmp_path / "ref", tiny_model_dir)
    assert cli(reference).returncode == 0
    config = _config(tmp_path / "run", tiny_model_dir)
    killed = cli(config, fault="kill_after_step=5")
    assert killed.returncode == -signal.SIGKILL
    checkpoint = tmp_path / "run" / "out" / "checkpoint-4"
    assert (checkpoint / "value_head.safetensors").is_file() and (checkpoint / "rl_state.json").is_file()

    resumed = cli(config, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-4" in resumed.stderr
    ref_out, out = tmp_path / "ref" / "out", tmp_path / "run" / "out"
    ref_log, got_log = step_log(ref_out), step_log(out)
    for step in range(5, STEPS + 1):
        for key in ("loss", "reward", "kl_coef", "value_loss"):  # reward/kl_coef: steps that sampled a rollout
            if key not in ref_log[step]:
                continue
            assert got_log[step][key] == pytest.approx(ref_log[step][key], abs=1e-6), f"step {step} {key}"
    assert ref_log[5]["kl_coef"] != pytest.approx(0.05)  # the controller moved, so restoring it mattered
    assert max_weight_diff(final_weights(out), final_weights(ref_out)) <= 1e-6
    heads = [load_file(str(o / "value_head.safetensors")) for o in (out, ref_out)]
    assert max_weight_diff(*heads) <= 1e-6
    state = json.loads((checkpoint / "rl_state.json").read_text())
    assert state["kl_coef"] == pytest.approx(ref_log[5]["kl_coef"], abs=1e-9)  # saved after rollout 2's update


def test_grpo_resumes_after_sigkill_like_the_uninterrupted_run(tmp_path, tiny_model_dir):
    """On-policy GRPO (lora, KL to the adapter-disabled reference): killed after step 3, resumed from checkpoint-2."""
    rl = {"num_generations": 4, "beta": 0.04}
    train = {"max_steps": 4, "save_strategy": "steps", "save_steps": 2, "learning_rate": 1e-2}

    def config(folder: Path) -> Path:
        return write_rl_config(
            folder, tiny_model_dir, "grpo", method={"name": "lora", "lora_rank": 4}, rl=rl, train=train
        )

    assert cli(config(tmp_path / "ref")).returncode == 0
    run = config(tmp_path / "run")
    assert cli(run, fault="kill_after_step=3").returncode == -signal.SIGKILL
    resumed = cli(run, "--resume")
    assert resumed.returncode == 0 and "checkpoint-2" in resumed.stderr, resumed.stderr[-3000:]
    ref_log, got_log = step_log(tmp_path / "ref" / "out"), step_log(tmp_path / "run" / "out")
    for step in (3, 4):
        for key in ("loss", "reward", "kl"):
            assert got_log[step][key] == pytest.approx(ref_log[step][key], abs=1e-6), f"step {step} {key}"
    assert max_weight_diff(final_weights(tmp_path / "run" / "out"), final_weights(tmp_path / "ref" / "out")) <= 1e-6
