"""Rollout assembly, log-probs of left-padded rows, and the PPO reward shaping and KL controller."""

from __future__ import annotations

import pytest
import torch

from lmforge.rl.logprobs import completion_logprobs, position_ids_for
from lmforge.rl.ppo_trainer import adaptive_kl_update, token_rewards
from lmforge.rl.rollout import assemble


def test_assemble_pads_completions_and_keeps_the_stop_id():
    prompt = torch.tensor([[9, 5, 6], [5, 6, 7]])
    prompt_mask = torch.tensor([[0, 1, 1], [1, 1, 1]])
    completions = [[11, 2], [13, 14, 15, 16]]  # row 1 ended on its stop id 2; row 2 hit the token limit
    r = assemble(prompt, prompt_mask, completions, ended=[True, False], pad_id=9)
    assert r.completion_ids == [[11, 2], [13, 14, 15, 16]]
    assert r.ended.tolist() == [True, False]
    assert r.completion_mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1]]
    assert r.input_ids[0].tolist() == [9, 5, 6, 11, 2, 9, 9]
    assert r.attention_mask[0].tolist() == [0, 1, 1, 1, 1, 0, 0]


def test_position_ids_count_real_tokens_and_never_look_like_a_packed_row():
    mask = torch.tensor([[0, 0, 1, 1, 1]])
    assert position_ids_for(mask).tolist() == [[1, 1, 0, 1, 2]]


def test_left_padded_logprobs_equal_the_unpadded_ones(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    seq = torch.tensor([[5, 6, 7, 8, 9]])
    padded = torch.tensor([[0, 0, 5, 6, 7, 8, 9]])
    with torch.no_grad():
        alone, _ = completion_logprobs(model, seq, torch.ones_like(seq), 2)
        left, _ = completion_logprobs(model, padded, torch.tensor([[0, 0, 1, 1, 1, 1, 1]]), 2)
        wrong, _ = completion_logprobs(model, padded, torch.ones_like(padded), 2)  # negative control: pads attended
    assert torch.allclose(alone, left, atol=1e-5)
    assert not torch.allclose(alone, wrong, atol=1e-3)


def test_token_rewards_put_the_score_on_the_last_valid_token_and_penalise_kl():
    kl = torch.tensor([[0.1, 0.2, 0.3], [0.5, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    rewards = token_rewards(torch.tensor([1.0, 2.0]), kl, mask, kl_coef=0.5)
    assert torch.allclose(rewards, torch.tensor([[-0.05, -0.1, -0.15 + 1.0], [-0.25 + 2.0, 0.0, 0.0]]))


def test_adaptive_kl_raises_the_coefficient_above_target_and_lowers_it_below():
    assert adaptive_kl_update(0.1, kl=12.0, target=6.0, n_samples=100, horizon=1000) == pytest.approx(0.1 * 1.02)
    assert adaptive_kl_update(0.1, kl=3.0, target=6.0, n_samples=100, horizon=1000) == pytest.approx(0.1 * 0.98)
    assert adaptive_kl_update(0.1, kl=6.0, target=6.0, n_samples=100, horizon=1000) == pytest.approx(0.1)
