"""PPO for RLHF (Ziegler et al. 2019; Ouyang et al. 2022), with the classic per-token KL penalty in the reward.

Per rollout: sample completions, score them (reward model / callables / judge), and keep the policy's log-probs,
the reference's log-probs and the value head's values. Token rewards are -kl_coef * (logp - logp_ref), plus the
sequence score on the last completion token; GAE turns them into advantages (whitened over the batch) and
returns. Each trainer step then minimises the clipped policy loss + vf_coef * the clipped value loss on the
rollout; a rollout is reused for rl.ppo_epochs steps before the next one is sampled. The KL coefficient is fixed
or adapted towards rl.target_kl after every rollout; it is saved with each checkpoint (rl_state.json).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lmforge.rl.advantages import gae, whiten
from lmforge.rl.logprobs import completion_logprobs
from lmforge.rl.policy_losses import clipped_surrogate, clipped_value_loss, masked_mean
from lmforge.rl.rollout import Rollout
from lmforge.rl.rollout_trainer import RolloutTrainer


@dataclass
class PpoBuffer:
    rollout: Rollout
    mask: torch.Tensor  # (N, C) completion tokens of samples that count
    old_logprobs: torch.Tensor  # (N, C)
    old_values: torch.Tensor  # (N, C)
    advantages: torch.Tensor  # (N, C) whitened
    returns: torch.Tensor  # (N, C)


def adaptive_kl_update(coef: float, kl: float, target: float, n_samples: int, horizon: int) -> float:
    """Ziegler et al.'s proportional controller: coef *= 1 + clip(kl / target - 1, +-0.2) * n / horizon."""
    error = max(-0.2, min(0.2, kl / target - 1.0))
    return coef * (1.0 + error * n_samples / horizon)


def token_rewards(scores: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, kl_coef: float) -> torch.Tensor:
    """-kl_coef * KL per token, plus each sequence's score on its last valid token."""
    rewards = -kl_coef * kl * mask
    last = (mask.sum(dim=1) - 1).clamp(min=0).long()
    rows = torch.arange(mask.shape[0], device=mask.device)
    rewards[rows, last] += scores * (mask.sum(dim=1) > 0)
    return rewards


class PpoTrainer(RolloutTrainer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kl_coef = self.rl.kl_coef

    def generation_model(self, model: Any) -> Any:
        return self.accelerator.unwrap_model(model).policy

    def make_rollout(self, model: Any, inputs: dict[str, Any]) -> PpoBuffer:
        rollout, batch = self.sample(model, inputs)
        scores = self.score(batch).to(rollout.input_ids.device)
        valid = ~torch.isnan(scores)
        mask = (rollout.completion_mask * valid.unsqueeze(-1)).to(torch.float32)
        with torch.no_grad():
            old_logprobs, old_values = model(
                rollout.input_ids, rollout.attention_mask, rollout.completion_len, self.rl.temperature
            )
            ref_model, context = self.reference_context(model)
            with context:
                ref_logprobs, _ = completion_logprobs(
                    ref_model, rollout.input_ids, rollout.attention_mask, rollout.completion_len, self.rl.temperature
                )
        kl = (old_logprobs - ref_logprobs) * mask
        rewards = token_rewards(torch.nan_to_num(scores, nan=0.0), kl, mask, self.kl_coef)
        if self.rl.whiten_rewards:
            rewards = whiten(rewards, mask, shift_mean=False)
        advantages, returns = gae(rewards, old_values * mask, mask, self.rl.gamma, self.rl.lam)
        self._update_kl(kl, mask)
        return PpoBuffer(rollout, mask, old_logprobs, old_values * mask, whiten(advantages, mask), returns)

    def rollout_loss(self, model: Any, buffer: PpoBuffer) -> torch.Tensor:
        r = buffer.rollout
        logprobs, values = model(r.input_ids, r.attention_mask, r.completion_len, self.rl.temperature)
        pg, clipped = clipped_surrogate(logprobs, buffer.old_logprobs, buffer.advantages, self.rl.clip_range)
        vf = clipped_value_loss(values, buffer.old_values, buffer.returns, self.rl.cliprange_value)
        pg_loss, vf_loss = masked_mean(pg, buffer.mask), masked_mean(vf, buffer.mask)
        self._record("policy_loss", pg_loss.item())
        self._record("value_loss", vf_loss.item())
        self._record("clip_ratio", masked_mean(clipped.float(), buffer.mask).item())
        return pg_loss + self.rl.vf_coef * vf_loss

    def _update_kl(self, kl: torch.Tensor, mask: torch.Tensor) -> None:
        rows = mask.sum(dim=1) > 0
        seq_kl = kl.sum(dim=1)[rows].mean().item() if rows.any() else 0.0
        self._record("kl", seq_kl)
        self._record("kl_coef", self.kl_coef)
        if self.rl.adaptive_kl:
            self.kl_coef = adaptive_kl_update(
                self.kl_coef, seq_kl, self.rl.target_kl, int(rows.sum()), self.rl.kl_horizon
            )

    # --- saving: the policy's own folder plus the value head ---------------------------------------------
    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        folder = output_dir or self.args.output_dir
        if not self.args.should_save or folder is None:
            return
        self.accelerator.unwrap_model(self.model).save(folder)
        self.text_tokenizer.save_pretrained(folder)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        self.accelerator.unwrap_model(model or self.model).load(resume_from_checkpoint)

    def rl_state(self) -> dict[str, Any]:
        return {**super().rl_state(), "kl_coef": self.kl_coef}

    def load_rl_state(self, state: dict[str, Any]) -> None:
        super().load_rl_state(state)
        self.kl_coef = float(state.get("kl_coef", self.kl_coef))
