"""The rl config rules (config/checks.py) and the rl section's strict keys."""

from __future__ import annotations

import pytest

from lmforge.config import load_config
from lmforge.utils.errors import ConfigError

BASE = ["model.name_or_path=m", "data.datasets=[d]", "train.output_dir=/tmp/x"]
REWARD = "rl.reward_funcs=[lmforge.rl.builtin:exact_match]"


def test_rl_stages_are_known_and_load_with_a_reward():
    for stage in ("ppo", "grpo"):
        cfg = load_config(None, [*BASE, f"stage={stage}", REWARD])
        assert cfg.stage == stage and cfg.rl.reward_funcs == ["lmforge.rl.builtin:exact_match"]


def test_rl_stage_without_any_reward_is_refused():
    with pytest.raises(ConfigError, match="stage grpo needs a reward"):
        load_config(None, [*BASE, "stage=grpo"])


def test_grpo_needs_a_group_of_at_least_two():
    with pytest.raises(ConfigError, match=r"rl\.num_generations must be at least 2"):
        load_config(None, [*BASE, "stage=grpo", REWARD, "rl.num_generations=1"])
    assert load_config(None, [*BASE, "stage=ppo", REWARD, "rl.num_generations=1"]).rl.num_generations == 1


def test_greedy_rollouts_are_refused():
    with pytest.raises(ConfigError, match=r"rl\.temperature must be > 0"):
        load_config(None, [*BASE, "stage=ppo", REWARD, "rl.temperature=0"])


def test_evaluation_split_is_refused_for_rl_stages():
    with pytest.raises(ConfigError, match="no evaluation split"):
        load_config(None, [*BASE, "stage=grpo", REWARD, "data.val_size=0.1"])


def test_judge_keys_are_strict_with_a_hint():
    with pytest.raises(ConfigError, match=r"rl\.judge\.max_retry.*did you mean \"max_retries\""):
        load_config(None, [*BASE, "stage=grpo", "rl.judge={base_url: http://x/v1, model: j, max_retry: 3}"])


def test_deepspeed_is_refused_for_rl_stages():
    with pytest.raises(ConfigError, match=r"train\.deepspeed is not supported with stage ppo"):
        load_config(None, [*BASE, "stage=ppo", REWARD, "train.deepspeed=configs/deepspeed/ds_z2.json"])
