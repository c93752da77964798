"""RL losses and advantages on hand-made tensors against closed forms (each with a negative control)."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.rl.advantages import STD_EPS, gae, group_advantages, whiten
from lmforge.rl.policy_losses import clipped_surrogate, clipped_value_loss, k3_kl, masked_mean


def test_k3_kl_matches_closed_form_and_is_zero_for_equal_policies():
    logp = torch.tensor([[-1.0, -2.0]])
    ref = torch.tensor([[-1.5, -1.0]])
    expected = [math.exp(-0.5) + 0.5 - 1, math.exp(1.0) - 1.0 - 1]
    assert torch.allclose(k3_kl(logp, ref), torch.tensor([expected]))
    assert torch.equal(k3_kl(logp, logp), torch.zeros_like(logp))


def test_k3_kl_is_an_unbiased_estimate_of_the_true_kl():
    p = torch.tensor([0.7, 0.2, 0.1])
    q = torch.tensor([0.3, 0.3, 0.4])
    true_kl = float((p * (p / q).log()).sum())
    expected_k3 = float((p * k3_kl(p.log(), q.log())).sum())  # E_p[k3]
    assert expected_k3 == pytest.approx(true_kl, abs=1e-6)
    assert float((p * (p.log() - q.log()) ** 2 / 2).sum()) != pytest.approx(true_kl, abs=1e-3)  # k2 is biased


def test_clipped_surrogate_equals_the_ppo_formula():
    logp = torch.tensor([[math.log(1.5), math.log(0.5), math.log(1.1)]])
    old = torch.zeros(1, 3)
    adv = torch.tensor([[1.0, -1.0, 2.0]])
    loss, clipped = clipped_surrogate(logp, old, adv, clip_range=0.2)
    # ratio 1.5, A>0 -> clipped to 1.2; ratio 0.5, A<0 -> clipped to 0.8 (min picks -0.8); ratio 1.1 inside
    assert torch.allclose(loss, torch.tensor([[-1.2, 0.8, -2.2]]))
    assert clipped.tolist() == [[True, True, False]]


def test_clipped_surrogate_broadcasts_sequence_advantages_and_gives_the_policy_gradient_on_policy():
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.3]], requires_grad=True)
    adv = torch.tensor([2.0, -1.0])
    loss, _ = clipped_surrogate(logp, logp.detach(), adv, clip_range=0.2)
    masked_mean(loss, torch.ones(2, 2)).backward()
    assert torch.allclose(logp.grad, torch.tensor([[-0.5, -0.5], [0.25, 0.25]]))  # -A / num_tokens


def test_masked_mean_ignores_masked_tokens_and_weights_by_tokens():
    values = torch.tensor([[1.0, 2.0, 100.0], [3.0, 100.0, 100.0]])
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    assert masked_mean(values, mask).item() == pytest.approx(2.0)
    assert values.mean().item() != pytest.approx(2.0)  # negative control
    assert masked_mean(values, torch.zeros_like(mask)).item() == 0.0


def test_clipped_value_loss_takes_the_larger_error():
    values = torch.tensor([[1.0, 0.0]])
    old = torch.tensor([[0.0, 0.0]])
    returns = torch.tensor([[2.0, 0.5]])
    # token 0: unclipped (1-2)^2 = 1, clipped (0.2-2)^2 = 3.24 -> 1.62; token 1: both 0.25 -> 0.125
    assert torch.allclose(clipped_value_loss(values, old, returns, 0.2), torch.tensor([[1.62, 0.125]]))


def test_group_advantages_normalise_within_each_group():
    rewards = torch.tensor([1.0, 2.0, 3.0, 5.0, 5.0, 5.0])
    adv = group_advantages(rewards, group_size=3)
    assert torch.allclose(adv[:3], torch.tensor([-1.0, 0.0, 1.0]) / (1.0 + STD_EPS))  # std([1,2,3]) = 1
    assert torch.equal(adv[3:], torch.zeros(3))  # equal rewards: no signal, no division by ~0
    wrong = (rewards - rewards.mean()) / rewards.std()  # negative control: batch-wide normalisation differs
    assert not torch.allclose(adv, wrong, atol=1e-2)


def test_group_advantages_unscaled_are_centred_rewards():
    adv = group_advantages(torch.tensor([1.0, 3.0, 0.0, 4.0]), group_size=2, scale=False)
    assert adv.tolist() == [-1.0, 1.0, -2.0, 2.0]


def test_group_advantages_exclude_nan_rewards_from_the_statistics():
    rewards = torch.tensor([1.0, float("nan"), 3.0, 7.0, float("nan"), float("nan")])
    adv = group_advantages(rewards, group_size=3)
    expected = torch.tensor([-1.0, 1.0]) / (math.sqrt(2.0) + STD_EPS)  # mean 2, std of [1, 3] = sqrt(2)
    assert torch.allclose(adv[[0, 2]], expected)
    assert math.isnan(adv[1]) and math.isnan(adv[4]) and math.isnan(adv[5])
    assert adv[3].item() == 0.0  # a group with one valid member has no relative signal


def test_group_advantages_reject_a_batch_that_does_not_split_into_groups():
    with pytest.raises(ValueError, match="groups of 4"):
        group_advantages(torch.zeros(6), group_size=4)


def test_gae_matches_the_recursion_by_hand():
    rewards = torch.tensor([[0.0, 0.0, 1.0, 9.0]])
    values = torch.tensor([[0.5, 0.4, 0.3, 9.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    gamma, lam = 0.9, 0.8
    d2 = 1.0 - 0.3  # last valid token: next value 0
    d1 = 0.0 + gamma * 0.3 - 0.4
    d0 = 0.0 + gamma * 0.4 - 0.5
    a2 = d2
    a1 = d1 + gamma * lam * a2
    a0 = d0 + gamma * lam * a1
    adv, ret = gae(rewards, values, mask, gamma, lam)
    assert torch.allclose(adv, torch.tensor([[a0, a1, a2, 0.0]]))
    assert torch.allclose(ret, torch.tensor([[a0 + 0.5, a1 + 0.4, a2 + 0.3, 0.0]]))


def test_gae_with_gamma_and_lambda_one_is_reward_to_go_minus_value():
    rewards = torch.tensor([[0.1, 0.2, 0.3]])
    values = torch.tensor([[1.0, 2.0, 3.0]])
    adv, _ = gae(rewards, values, torch.ones(1, 3), 1.0, 1.0)
    assert torch.allclose(adv, torch.tensor([[0.6 - 1.0, 0.5 - 2.0, 0.3 - 3.0]]))


def test_whiten_gives_zero_mean_unit_variance_on_masked_entries():
    values = torch.tensor([[1.0, 2.0, 3.0, 50.0]])
    mask = torch.tensor([[1, 1, 1, 0]])
    out = whiten(values, mask)
    assert masked_mean(out, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert masked_mean(out**2, mask).item() == pytest.approx(1.0, abs=1e-4)
    assert out[0, 3].item() == 0.0
