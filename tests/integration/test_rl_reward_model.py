"""A stage-rm style reward model (lmforge.models.reward) as a reward source: rollouts are rescored with the RM's
own template when it differs from the policy's, and a PPO run trains against it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lmforge.models.reward import load_reward_model, write_reward_info
from lmforge.rl.reward_model import RewardModelSource
from lmforge.rl.rewards import RewardBatch
from lmforge.templates import get_template
from lmforge.train import run_training
from lmforge.training.callbacks import read_log
from tests.integration.rl_runs import write_rl_config
from tests.integration.runs import load

pytestmark = pytest.mark.slow


def make_reward_model(folder: Path, base: Path, template: str) -> Path:
    """A *ForSequenceClassification(num_labels=1) folder as stage rm writes it (seeded random score head)."""
    torch.manual_seed(3)
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    write_reward_info(folder, template)
    return folder


def _batch(tokenizer) -> RewardBatch:
    completions = ["Paris.", "It is Rome"]
    stop = tokenizer.convert_tokens_to_ids("<|im_end|>")
    return RewardBatch(
        messages=[[{"role": "user", "content": "Capital of France?"}]] * 2,
        completions=completions,
        completion_ids=[[*tokenizer.encode(c, add_special_tokens=False), stop] for c in completions],
        references=[None, None],
        ended=[True, True],
    )


@pytest.mark.parametrize("rm_template", ["chatml", "qwen"])
def test_reward_model_scores_what_its_own_template_renders(tmp_path, tiny_model_dir, rm_template):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    policy_template = get_template("chatml", tokenizer)
    rm_dir = make_reward_model(tmp_path / "rm", tiny_model_dir, rm_template)
    source = RewardModelSource(str(rm_dir), 1.0, tokenizer, policy_template)
    batch = _batch(tokenizer)
    rm = load_reward_model(str(rm_dir))
    rm_rendered = [
        rm.template.encode(rm.tokenizer, [*m, {"role": "assistant", "content": c}]).input_ids
        for m, c in zip(batch.messages, batch.completions, strict=True)
    ]
    policy_ids = [
        policy_template.encode_prompt(tokenizer, m) + ids
        for m, ids in zip(batch.messages, batch.completion_ids, strict=True)
    ]
    scores = torch.tensor(source.score(batch))
    assert torch.allclose(scores, rm.score(rm_rendered), atol=1e-5)
    if rm_template == "qwen":  # negative control: the policy's ids are not what this RM was trained on
        assert rm_rendered != policy_ids
        assert not torch.allclose(scores, rm.score(policy_ids), atol=1e-4)
    else:  # same template: the rollout's ids followed by the turn suffix training appended
        assert all(r[: len(p)] == p and len(r) - len(p) <= 2 for r, p in zip(rm_rendered, policy_ids, strict=True))


def test_ppo_trains_against_a_reward_model(tmp_path, tiny_model_dir):
    rm_dir = make_reward_model(tmp_path / "rm", tiny_model_dir, "chatml")
    rl = {"reward_funcs": [], "reward_model": str(rm_dir), "num_generations": 2, "max_new_tokens": 8}
    config = write_rl_config(
        tmp_path, tiny_model_dir, "ppo", method={"name": "lora", "lora_rank": 4}, rl=rl, train={"max_steps": 2}
    )
    run_training(load(config), resume=False)
    records = [r for r in read_log(tmp_path / "out") if "reward" in r]
    assert len(records) == 2 and all(r["rewards/reward_model"] == r["rewards/reward_model"] for r in records)
    assert (tmp_path / "out" / "value_head.safetensors").is_file()
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
