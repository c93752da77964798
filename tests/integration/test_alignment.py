"""Preference stages end to end on a tiny model: every stage x method trains, and each stage learns a rule.

The task: chosen answers use only "good" words, rejected ones only "bad" words (tests/unit/alignment/helpers.py).
After a few steps, held-out pairs (new prompts, new word mixes) get a clearly larger chosen-vs-rejected log-prob
margin (dpo/kto/orpo/simpo) or a higher pairwise accuracy (rm) than before training; training on the swapped
pairs moves the margin the other way (negative control).
"""

from __future__ import annotations

import math

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, set_seed

from lmforge.config.schema import ModelConfig
from lmforge.models.model_loading import load_tokenizer
from lmforge.models.reward import load_reward_backbone, load_reward_model, sequence_scores
from lmforge.templates import get_template
from lmforge.train import run_training
from lmforge.training.callbacks import read_log
from tests.unit.alignment.helpers import (
    kto_rows,
    load_run,
    load_trained_policy,
    logp_margin,
    pair_batch,
    rule_pairs,
    write_run,
)

STAGES = ["rm", "dpo", "kto", "orpo", "simpo"]


def stage_rows(stage: str, pairs: list[dict]) -> list[dict]:
    return kto_rows(pairs) if stage == "kto" else pairs


MATRIX = [(stage, method) for stage in STAGES for method in ("full", "freeze", "lora")]


@pytest.mark.parametrize(("stage", "method"), [*MATRIX, ("dpo", "qlora"), ("rm", "qlora")])
def test_every_stage_trains_with_every_method(tmp_path, tiny_model_dir, stage, method):
    config = write_run(tmp_path, tiny_model_dir, stage, method, stage_rows(stage, rule_pairs(8, seed=1)),
                       train={"max_steps": 2})  # fmt: skip
    metrics = run_training(load_run(config))
    log = [r for r in read_log(tmp_path / "out") if "loss" in r]
    assert [r["step"] for r in log] == [1, 2] and all(math.isfinite(r["loss"]) for r in log)
    assert metrics["num_input_tokens_seen"] > 0
    out = tmp_path / "out"
    adapter = method in ("lora", "qlora")
    weights = load_file(str(out / ("adapter_model.safetensors" if adapter else "model.safetensors")))
    assert weights and (out / "tokenizer_config.json").is_file()
    if stage == "rm":
        assert any("score" in key for key in weights)


@pytest.fixture(scope="module")
def heldout(tiny_model_dir):
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))
    return pair_batch(rule_pairs(8, seed=12, start=100), tokenizer, get_template("chatml", tokenizer))


def train_rule(tmp_path, model_dir, stage: str, swapped: bool = False):
    pairs = rule_pairs(32, seed=11)
    if swapped:
        pairs = [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]
    config = write_run(tmp_path, model_dir, stage, "lora", stage_rows(stage, pairs),
                       train={"max_steps": 16, "learning_rate": 5e-3})  # fmt: skip
    run_training(load_run(config))
    return tmp_path / "out"


@pytest.mark.parametrize("stage", ["dpo", "kto", "orpo", "simpo"])
def test_policy_stages_learn_to_prefer_the_rule(tmp_path, tiny_model_dir, heldout, stage):
    before = logp_margin(AutoModelForCausalLM.from_pretrained(tiny_model_dir), heldout)
    after = logp_margin(load_trained_policy(train_rule(tmp_path, tiny_model_dir, stage), tiny_model_dir), heldout)
    assert after > before + 3.0, (before, after)


def test_dpo_on_swapped_pairs_moves_the_margin_the_other_way(tmp_path, tiny_model_dir, heldout):
    before = logp_margin(AutoModelForCausalLM.from_pretrained(tiny_model_dir), heldout)
    out = train_rule(tmp_path, tiny_model_dir, "dpo", swapped=True)
    assert logp_margin(load_trained_policy(out, tiny_model_dir), heldout) < before - 3.0


def test_reward_model_learns_the_rule(tmp_path, tiny_model_dir, heldout):
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))
    set_seed(7)  # the run's seed: the same initial score head
    start = load_reward_backbone(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32"), tokenizer).eval()
    reward = load_reward_model(str(train_rule(tmp_path, tiny_model_dir, "rm")))
    with torch.no_grad():
        before, after = sequence_scores(start, heldout), sequence_scores(reward.model, heldout)
    accuracy = [float((s[:8] > s[8:]).float().mean()) for s in (before, after)]
    assert accuracy[1] == 1.0 and accuracy[0] < 0.8, accuracy
    assert float((after[:8] - after[8:]).mean()) > 2.0
