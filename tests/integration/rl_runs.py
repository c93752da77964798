"""Helpers for the RL integration tests: prompt files, run configs and a seeded reward evaluation."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import torch

from tests.fixtures.run_configs import write_run_yaml
from tests.integration.runs import QA_PAIRS

DIGITS = "tests.integration.rl_rewards:digit_fraction"


def write_prompts(path: Path) -> Path:
    """The QA questions as alpaca rows (their answers become reference answers)."""
    path.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in QA_PAIRS]), encoding="utf-8")
    return path


def write_rl_config(folder: Path, model_dir: Path, stage: str, **sections: dict[str, Any]) -> Path:
    """A ppo/grpo run YAML in `folder` (output folder/out); `sections` update model/data/method/rl/train."""
    folder.mkdir(parents=True, exist_ok=True)
    dataset = {"path": str(write_prompts(folder / "prompts.json")), "format": "alpaca"}
    merged: dict[str, dict[str, Any]] = {
        "rl": {"reward_funcs": [DIGITS], "num_generations": 8, "max_new_tokens": 16, "beta": 0.0},
        "train": {"learning_rate": 3e-3, "max_steps": 40},
    }
    for section, values in sections.items():
        merged.setdefault(section, {}).update(values)
    return write_run_yaml(folder, model_dir, stage, dataset, cutoff_len=128, default_method={"name": "full"}, **merged)


def load_policy(folder: Path, base: Path) -> Any:
    from transformers import AutoModelForCausalLM

    if (folder / "adapter_config.json").exists():
        from peft import PeftModel

        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), folder).eval()
    return AutoModelForCausalLM.from_pretrained(folder).eval()


def mean_reward(model: Any, tokenizer: Any, samples: int = 16, seed: int = 123) -> tuple[float, float]:
    """(mean, standard error) of the digit-fraction reward over the QA prompts, `samples` seeded samples each,
    prompted and stopped exactly as the rollouts are."""
    from lmforge.rl.rollout import generate_rollout, sampling_options
    from lmforge.templates import get_template
    from tests.integration.rl_rewards import digit_fraction

    template = get_template("chatml", tokenizer)
    prompts = [template.encode_prompt(tokenizer, [{"role": "user", "content": q}]) for q, _ in QA_PAIRS]
    torch.manual_seed(seed)
    rollout = generate_rollout(
        model,
        [p for p in prompts for _ in range(samples)],
        template.stop_token_ids(tokenizer),
        tokenizer.pad_token_id,
        sampling_options(16, 1.0, 1.0, 0),
    )
    rewards = torch.tensor(digit_fraction(tokenizer.batch_decode(rollout.completion_ids, skip_special_tokens=True)))
    return rewards.mean().item(), rewards.std().item() / math.sqrt(len(rewards))
