"""Preference losses equal their closed forms on hand-made tensors (QUALITY C14, C15)."""

from __future__ import annotations

import math

import pytest
import torch

from lmforge.alignment import preference_losses as losses


def logsig(x: float) -> float:
    return -math.log1p(math.exp(-x))


# 2 pairs: policy/reference summed log-probs written by hand
PC, PR = torch.tensor([-5.0, -7.0]), torch.tensor([-6.0, -6.5])
RC, RR = torch.tensor([-5.5, -7.0]), torch.tensor([-5.5, -7.0])


def test_dpo_sigmoid_equals_closed_form_on_2x2_tensors():
    out, chosen, rejected = losses.dpo_loss(PC, PR, RC, RR, beta=0.1)
    # pair 0: ((-5 + 5.5) - (-6 + 5.5)) = 1.0; pair 1: ((-7 + 7) - (-6.5 + 7)) = -0.5
    assert out.tolist() == pytest.approx([-logsig(0.1), -logsig(-0.05)], abs=1e-7)
    assert chosen.tolist() == pytest.approx([0.05, 0.0], abs=1e-7)
    assert rejected.tolist() == pytest.approx([-0.05, 0.05], abs=1e-7)


def test_dpo_is_ln2_with_zero_margin_when_policy_equals_reference():
    out, chosen, rejected = losses.dpo_loss(PC, PR, PC.clone(), PR.clone(), beta=0.1)
    assert out.mean().item() == pytest.approx(math.log(2), abs=1e-7)
    assert (chosen - rejected).abs().max().item() == 0.0


def test_dpo_label_smoothing_mixes_both_directions():
    out, _, _ = losses.dpo_loss(PC, PR, RC, RR, beta=0.1, label_smoothing=0.2)
    assert out[0].item() == pytest.approx(-0.8 * logsig(0.1) - 0.2 * logsig(-0.1), abs=1e-7)


def test_ipo_and_hinge_equal_closed_forms():
    ipo, _, _ = losses.dpo_loss(PC, PR, RC, RR, beta=0.1, loss_type="ipo")
    assert ipo.tolist() == pytest.approx([(1.0 - 5.0) ** 2, (-0.5 - 5.0) ** 2], abs=1e-5)
    hinge, _, _ = losses.dpo_loss(PC, PR, RC, RR, beta=0.1, loss_type="hinge")
    assert hinge.tolist() == pytest.approx([0.9, 1.05], abs=1e-6)
    big, _, _ = losses.dpo_loss(PC, PR, RC, RR, beta=2.0, loss_type="hinge")
    assert big[0].item() == 0.0  # margin beyond 1/beta: no loss


def test_unknown_dpo_loss_is_refused():
    with pytest.raises(ValueError, match="sigmoid, ipo, hinge"):
        losses.dpo_loss(PC, PR, RC, RR, beta=0.1, loss_type="robust")


def test_simpo_uses_length_normalised_logps_and_gamma():
    chosen_mean, rejected_mean = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    out, chosen, _ = losses.simpo_loss(chosen_mean, rejected_mean, beta=2.0, gamma=0.5)
    assert out.tolist() == pytest.approx([-logsig(2.0 * 0.5 - 0.5), -logsig(2.0 * -1.0 - 0.5)], abs=1e-6)
    assert chosen.tolist() == pytest.approx([-2.0, -4.0])


def test_orpo_is_nll_minus_lambda_log_sigmoid_odds_ratio():
    chosen_mean, rejected_mean = torch.tensor([-0.5]), torch.tensor([-1.2])
    out, log_odds, _ = losses.orpo_loss(chosen_mean, rejected_mean, torch.tensor(2.0), lam=0.1)
    pc, pr = math.exp(-0.5), math.exp(-1.2)
    expected_odds = math.log(pc / (1 - pc)) - math.log(pr / (1 - pr))
    assert log_odds.item() == pytest.approx(expected_odds, abs=1e-6)
    assert out.item() == pytest.approx(2.0 - 0.1 * logsig(expected_odds), abs=1e-6)


def test_kto_weights_desirable_and_undesirable_sides():
    policy, ref = torch.tensor([-4.0, -6.0]), torch.tensor([-5.0, -5.0])
    good = torch.tensor([True, False])
    out, rewards = losses.kto_loss(policy, ref, good, torch.tensor(0.2), beta=0.5, desirable_weight=1.5)
    sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    assert out.tolist() == pytest.approx([1.5 * (1 - sig(0.5 * (1.0 - 0.2))), 1 - sig(0.5 * (0.2 + 1.0))], abs=1e-6)
    assert rewards.tolist() == pytest.approx([0.5, -0.5])


def test_kto_kl_estimate_is_the_clamped_mean_log_ratio():
    assert losses.kto_kl_estimate(torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.5])).item() == pytest.approx(0.25)
    assert losses.kto_kl_estimate(torch.tensor([-3.0]), torch.tensor([-2.0])).item() == 0.0


def test_reward_loss_is_minus_logsigmoid_of_the_margin_and_swap_negates_it():
    rc, rr = torch.tensor([1.2, -0.3]), torch.tensor([0.2, 0.4])
    assert losses.reward_pair_loss(rc, rr).tolist() == pytest.approx([-logsig(1.0), -logsig(-0.7)], abs=1e-6)
    swapped = losses.reward_pair_loss(rr, rc)
    assert swapped.tolist() == pytest.approx([-logsig(-1.0), -logsig(0.7)], abs=1e-6)


def test_orpo_stays_finite_when_a_response_is_certain():
    chosen_mean = torch.tensor([0.0], requires_grad=True)
    out, _, _ = losses.orpo_loss(chosen_mean, torch.tensor([-1.0]), torch.tensor(0.0), lam=0.1)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(chosen_mean.grad).all()
