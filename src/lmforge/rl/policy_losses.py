"""Policy-gradient losses on per-token tensors: clipped surrogate, clipped value loss and the k3 KL estimate.

Every function takes a `mask` of valid completion tokens (1 = trained, 0 = padding or an excluded sample) and
returns the mean over valid tokens of the whole batch (token-level normalisation, as DAPO and Dr. GRPO argue:
long and short completions weigh by their tokens, not per sequence).
"""

from __future__ import annotations

import torch


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of `values` where `mask` is 1; 0 (with a gradient path) when nothing is valid."""
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def k3_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference): exp(r) - r - 1 with r = ref - policy; >= 0, unbiased."""
    delta = ref_logprobs - logprobs
    return torch.exp(delta) - delta - 1.0


def clipped_surrogate(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, advantages: torch.Tensor, clip_range: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token PPO policy loss -min(ratio * A, clip(ratio) * A) and whether clipping was active.

    `advantages` is per token (B, T) or per sequence (B,), then broadcast over the tokens.
    """
    if advantages.dim() == logprobs.dim() - 1:
        advantages = advantages.unsqueeze(-1)
    ratio = torch.exp(logprobs - old_logprobs)
    unclipped = ratio * advantages
    clipped = torch.clamp(ratio, 1.0 - clip_range, 1.0 + clip_range) * advantages
    return -torch.min(unclipped, clipped), (clipped < unclipped)


def clipped_value_loss(
    values: torch.Tensor, old_values: torch.Tensor, returns: torch.Tensor, clip_range: float
) -> torch.Tensor:
    """Per-token 0.5 * max((V - R)^2, (clip(V, V_old +- eps) - R)^2), as in PPO2 / trl's PPOTrainer."""
    clipped = old_values + torch.clamp(values - old_values, -clip_range, clip_range)
    return 0.5 * torch.max((values - returns) ** 2, (clipped - returns) ** 2)
