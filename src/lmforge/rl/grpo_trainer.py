"""GRPO (Shao et al. 2024, DeepSeekMath): group-relative advantages, clipped ratio objective, k3 KL to a reference.

Per step: `num_generations` completions per prompt are sampled and scored; each completion's advantage is its
reward minus its group's mean, divided by the group's std (unless rl.scale_rewards is false, as Dr. GRPO
suggests); samples without a reward (judge failures) are excluded. The loss per completion token is
-min(ratio * A, clip(ratio, 1 +- eps) * A) + beta * k3(policy, reference), averaged over all tokens of the batch.
With rl.ppo_epochs = 1 (default) the update is on-policy: the ratio is exp(logp - logp.detach()) = 1 with the
policy-gradient gradient; with more epochs the rollout's log-probs are kept and the ratio is clipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lmforge.rl.advantages import group_advantages
from lmforge.rl.logprobs import completion_logprobs
from lmforge.rl.policy_losses import clipped_surrogate, k3_kl, masked_mean
from lmforge.rl.rollout import Rollout
from lmforge.rl.rollout_trainer import RolloutTrainer


@dataclass
class GrpoBuffer:
    rollout: Rollout
    advantages: torch.Tensor  # (N,) 0 for excluded samples
    mask: torch.Tensor  # (N, C) completion tokens of samples that count
    old_logprobs: torch.Tensor | None  # (N, C), kept only when the rollout is reused (ppo_epochs > 1)
    ref_logprobs: torch.Tensor | None  # (N, C), None when beta == 0


class GrpoTrainer(RolloutTrainer):
    def make_rollout(self, model: Any, inputs: dict[str, Any]) -> GrpoBuffer:
        rollout, batch = self.sample(model, inputs)
        rewards = self.score(batch).to(rollout.input_ids.device)
        advantages = group_advantages(rewards, self.rl.num_generations, scale=self.rl.scale_rewards)
        valid = ~torch.isnan(advantages)
        mask = rollout.completion_mask * valid.unsqueeze(-1).to(rollout.completion_mask.dtype)
        old = self._logprobs_no_grad(model, rollout) if self.rl.ppo_epochs > 1 else None
        ref = None
        if self.rl.beta > 0:
            ref_model, context = self.reference_context(model)
            with context:
                ref = self._logprobs_no_grad(ref_model, rollout)
        return GrpoBuffer(rollout, torch.nan_to_num(advantages, nan=0.0), mask, old, ref)

    def rollout_loss(self, model: Any, buffer: GrpoBuffer) -> torch.Tensor:
        r = buffer.rollout
        logprobs, _ = completion_logprobs(model, r.input_ids, r.attention_mask, r.completion_len, self.rl.temperature)
        old = buffer.old_logprobs if buffer.old_logprobs is not None else logprobs.detach()
        per_token, clipped = clipped_surrogate(logprobs, old, buffer.advantages, self.rl.clip_range)
        if buffer.ref_logprobs is not None:
            kl = k3_kl(logprobs, buffer.ref_logprobs)
            per_token = per_token + self.rl.beta * kl
            self._record("kl", masked_mean(kl.detach(), buffer.mask).item())
        self._record("clip_ratio", masked_mean(clipped.float(), buffer.mask).item())
        return masked_mean(per_token, buffer.mask)

    @torch.no_grad()
    def _logprobs_no_grad(self, model: Any, rollout: Rollout) -> torch.Tensor:
        logprobs, _ = completion_logprobs(
            model, rollout.input_ids, rollout.attention_mask, rollout.completion_len, self.rl.temperature
        )
        return logprobs
