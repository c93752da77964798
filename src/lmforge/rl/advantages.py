"""Advantages: GRPO's group-relative normalisation and PPO's generalised advantage estimation (GAE)."""

from __future__ import annotations

import torch

STD_EPS = 1e-4  # a group whose rewards are (almost) all equal gets advantages ~0, not a division by ~0


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True) -> torch.Tensor:
    """(reward - group mean) / (group std + eps) for consecutive groups of `group_size`; NaN rewards excluded.

    A NaN reward marks a sample whose reward could not be computed (e.g. the judge failed): it gets a NaN
    advantage (callers drop it from the loss) and the group statistics use only the valid members. A group with
    fewer than two valid members has no relative signal, so its advantages are 0.
    """
    if rewards.numel() % group_size:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    groups = rewards.view(-1, group_size)
    valid = ~torch.isnan(groups)
    count = valid.sum(dim=1, keepdim=True)
    filled = torch.where(valid, groups, torch.zeros_like(groups))
    mean = filled.sum(dim=1, keepdim=True) / count.clamp(min=1)
    centred = torch.where(valid, groups - mean, torch.zeros_like(groups))
    advantages = centred
    if scale:
        var = (centred**2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)  # unbiased, like torch.std
        advantages = centred / (var.sqrt() + STD_EPS)
    advantages = torch.where(count >= 2, advantages, torch.zeros_like(advantages))
    return torch.where(valid, advantages, torch.full_like(advantages, float("nan"))).view(-1)


def whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """Normalise to zero mean and unit variance over the masked entries (the mean is kept if not shift_mean)."""
    mask = mask.to(values.dtype)
    count = mask.sum().clamp(min=1.0)
    mean = (values * mask).sum() / count
    var = (((values - mean) * mask) ** 2).sum() / count
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    return (whitened if shift_mean else whitened + mean) * mask


def gae(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(advantages, returns) per token by GAE over each row's valid tokens; the value after the last one is 0.

    delta_t = r_t + gamma * V_{t+1} - V_t and A_t = delta_t + gamma * lam * A_{t+1}, computed right to left.
    Masked tokens (right padding after the completion) carry no reward, no value and no advantage.
    """
    mask = mask.to(values.dtype)
    values = values * mask
    rewards = rewards * mask
    advantages = torch.zeros_like(values)
    next_value = torch.zeros_like(values[:, 0])
    running = torch.zeros_like(values[:, 0])
    for t in reversed(range(values.shape[1])):
        delta = rewards[:, t] + gamma * next_value - values[:, t]
        running = (delta + gamma * lam * running) * mask[:, t]
        advantages[:, t] = running
        next_value = values[:, t]
    return advantages, (advantages + values) * mask
