"""Preference losses as pure functions of per-sample log-probabilities (or rewards), one per objective.

Inputs are 1-D tensors with one value per pair (or per example for KTO); every function returns the per-sample
losses (callers take the mean) and, where the objective defines one, the implicit rewards. Formulas (see also
docs/alignment.md):

    DPO (sigmoid)  z = beta * ((pi_c - ref_c) - (pi_r - ref_r));  loss = -(1-eps) logsig(z) - eps logsig(-z)
    IPO            loss = ((pi_c - ref_c) - (pi_r - ref_r) - 1/(2 beta))^2
    hinge (SLiC)   loss = relu(1 - z)
    SimPO          z = beta * (pi_c/|y_c| - pi_r/|y_r|) - gamma;  loss = -(1-eps) logsig(z) - eps logsig(-z)
    ORPO           loss = NLL(chosen) - lambda * logsig(log odds(p_c) - log odds(p_r)),  p = exp(mean token log-prob)
    KTO            r = pi - ref;  desirable: w_d (1 - sig(beta (r - z0))),  undesirable: w_u (1 - sig(beta (z0 - r)))
    RM             loss = -logsig(r_c - r_r)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

DPO_LOSSES = ("sigmoid", "ipo", "hinge")


def _smoothed_logsigmoid_loss(z: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """-logsig(z), with probability `label_smoothing` that the pair's label is flipped (cDPO)."""
    return -F.logsigmoid(z) * (1 - label_smoothing) - F.logsigmoid(-z) * label_smoothing


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(losses, chosen rewards, rejected rewards) of DPO / IPO / hinge on summed sequence log-probs."""
    chosen_ratio = policy_chosen - ref_chosen
    rejected_ratio = policy_rejected - ref_rejected
    logits = chosen_ratio - rejected_ratio
    if loss_type == "sigmoid":
        losses = _smoothed_logsigmoid_loss(beta * logits, label_smoothing)
    elif loss_type == "ipo":
        losses = (logits - 1 / (2 * beta)) ** 2
    elif loss_type == "hinge":
        losses = torch.relu(1 - beta * logits)
    else:
        raise ValueError(f"unknown dpo loss {loss_type!r}; expected one of {', '.join(DPO_LOSSES)}")
    return losses, beta * chosen_ratio.detach(), beta * rejected_ratio.detach()


def simpo_loss(
    chosen_mean: torch.Tensor,
    rejected_mean: torch.Tensor,
    beta: float,
    gamma: float,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(losses, chosen rewards, rejected rewards) of SimPO on length-normalised (mean token) log-probs."""
    logits = beta * (chosen_mean - rejected_mean) - gamma
    losses = _smoothed_logsigmoid_loss(logits, label_smoothing)
    return losses, beta * chosen_mean.detach(), beta * rejected_mean.detach()


def orpo_loss(
    chosen_mean: torch.Tensor, rejected_mean: torch.Tensor, chosen_nll: torch.Tensor, lam: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(losses, log odds ratios, log sigmoid of them): NLL of the chosen minus lambda x log-sigmoid odds ratio.

    `chosen_nll` is the scalar token-mean NLL of the chosen responses; log(1 - p) is computed as
    log(-expm1(log p)) for precision when p is near 1, with log p capped just below 0 (a memorised response
    with p == 1 in fp32 would otherwise give log 0 = -inf and NaN gradients).
    """
    capped_chosen, capped_rejected = chosen_mean.clamp(max=-1e-6), rejected_mean.clamp(max=-1e-6)
    log_odds = (chosen_mean - rejected_mean) - (
        torch.log(-torch.expm1(capped_chosen)) - torch.log(-torch.expm1(capped_rejected))
    )
    ratio = F.logsigmoid(log_odds)
    return chosen_nll - lam * ratio, log_odds.detach(), ratio.detach()


def kto_loss(
    policy: torch.Tensor,
    ref: torch.Tensor,
    desirable: torch.Tensor,
    kl: torch.Tensor,
    beta: float,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(losses, rewards) of KTO; `desirable` is a bool tensor, `kl` the (detached, >= 0) batch KL estimate z0."""
    ratio = policy - ref
    kl = kl.detach().clamp(min=0)
    good = desirable_weight * (1 - torch.sigmoid(beta * (ratio - kl)))
    bad = undesirable_weight * (1 - torch.sigmoid(beta * (kl - ratio)))
    return torch.where(desirable, good, bad), beta * ratio.detach()


def kto_kl_estimate(policy_mismatched: torch.Tensor, ref_mismatched: torch.Tensor) -> torch.Tensor:
    """The batch KL reference point z0: mean log-ratio of completions paired with other examples' prompts, >= 0."""
    return (policy_mismatched - ref_mismatched).mean().detach().clamp(min=0)


def reward_pair_loss(chosen_scores: torch.Tensor, rejected_scores: torch.Tensor) -> torch.Tensor:
    """Bradley-Terry pairwise loss of a reward model: -logsig(r_c - r_r) per pair."""
    return -F.logsigmoid(chosen_scores - rejected_scores)
