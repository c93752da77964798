"""One objective per preference stage: batch -> (loss, metrics), built from the pure losses in losses.py.

An objective owns what differs between stages (which log-probs or scores it needs, the loss, what it logs);
PreferenceTrainer owns everything else (the loop, checkpoints, metric averaging).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import torch

from lmforge.alignment import preference_losses as losses
from lmforge.alignment.batches import collate_kto, collate_pairs, sequence_logps
from lmforge.alignment.reference import Reference
from lmforge.config.schema import PreferenceConfig

Metrics = dict[str, torch.Tensor]


def pair_metrics(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> Metrics:
    """The reward statistics every pairwise stage logs (rewards are the implicit/explicit ones of the stage)."""
    margins = chosen_rewards - rejected_rewards
    return {
        "rewards/chosen": chosen_rewards.mean(),
        "rewards/rejected": rejected_rewards.mean(),
        "rewards/margins": margins.mean(),
        "rewards/accuracies": (margins > 0).float().mean(),
    }


def logps_metrics(sums: torch.Tensor, n: int) -> Metrics:
    return {"logps/chosen": sums[:n].detach().mean(), "logps/rejected": sums[n:].detach().mean()}


def token_mean_nll(sums: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """SFT loss of the given samples: minus the mean log-prob over all their trained tokens."""
    return -sums.sum() / counts.sum().clamp(min=1)


class Objective(ABC):
    """Base: the collator the stage's rows need and the reference-log-prob columns it can precompute."""

    collate: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] = staticmethod(collate_pairs)
    ref_columns: tuple[str, str] = ("ref_chosen_logps", "ref_rejected_logps")

    def __init__(self, pref: PreferenceConfig, reference: Reference | None = None) -> None:
        self.pref = pref
        self.reference = reference

    def reference_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Precomputed columns when the dataset carries them, else a reference forward (eval mode, no_grad)."""
        if self.ref_columns[0] in batch:
            return torch.cat([batch[self.ref_columns[0]], batch[self.ref_columns[1]]])
        if self.reference is None:
            raise RuntimeError("this objective needs a reference model or precomputed reference log-probs")
        return self.reference.logps(batch)[0]

    @abstractmethod
    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
        """(loss to minimise, detached scalar metrics) of one batch."""

    def with_sft_mixing(
        self, loss: torch.Tensor, metrics: Metrics, sums: torch.Tensor, counts: torch.Tensor
    ) -> tuple[torch.Tensor, Metrics]:
        """Add the log-prob metrics and, with pref.sft_weight, the SFT loss on the chosen responses (chosen rows
        are the first half of a pair batch)."""
        n = sums.shape[0] // 2
        metrics = {**metrics, **logps_metrics(sums, n)}
        if self.pref.sft_weight:
            nll = token_mean_nll(sums[:n], counts[:n])
            loss = loss + self.pref.sft_weight * nll
            metrics["sft_loss"] = nll
        return loss, metrics


class DpoObjective(Objective):
    """DPO / IPO / hinge against a reference, plus optional SFT-loss mixing on the chosen responses."""

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
        ref = self.reference_logps(batch)  # first: switching adapters must not happen inside the policy graph
        sums, counts = sequence_logps(model, batch)
        n = sums.shape[0] // 2
        pref = self.pref
        per_pair, chosen_r, rejected_r = losses.dpo_loss(
            sums[:n], sums[n:], ref[:n], ref[n:], pref.beta, pref.loss, pref.label_smoothing
        )
        return self.with_sft_mixing(per_pair.mean(), pair_metrics(chosen_r, rejected_r), sums, counts)


class SimpoObjective(Objective):
    """SimPO: reference-free, length-normalised log-probs with a target margin gamma."""

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
        sums, counts = sequence_logps(model, batch)
        n = sums.shape[0] // 2
        means = sums / counts.clamp(min=1)
        pref = self.pref
        per_pair, chosen_r, rejected_r = losses.simpo_loss(
            means[:n], means[n:], pref.beta, pref.simpo_gamma, pref.label_smoothing
        )
        return self.with_sft_mixing(per_pair.mean(), pair_metrics(chosen_r, rejected_r), sums, counts)


class OrpoObjective(Objective):
    """ORPO: SFT loss on the chosen responses minus beta (lambda) x log-sigmoid of the odds ratio."""

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
        sums, counts = sequence_logps(model, batch)
        n = sums.shape[0] // 2
        means = sums / counts.clamp(min=1)
        nll = token_mean_nll(sums[:n], counts[:n])
        per_pair, log_odds, _ = losses.orpo_loss(means[:n], means[n:], nll, self.pref.beta)
        metrics = pair_metrics(self.pref.beta * means[:n].detach(), self.pref.beta * means[n:].detach())
        metrics.update({"nll_loss": nll.detach(), "log_odds_ratio": log_odds.mean()})
        return per_pair.mean(), metrics


class KtoObjective(Objective):
    """KTO on unpaired examples; each batch holds the examples then their mismatched KL samples."""

    collate = staticmethod(collate_kto)
    ref_columns = ("ref_logps", "ref_kl_logps")

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
        ref = self.reference_logps(batch)
        sums, _ = sequence_logps(model, batch)
        n = sums.shape[0] // 2
        kl = losses.kto_kl_estimate(sums[n:], ref[n:])
        good = batch["kto_label"]
        pref = self.pref
        per_example, rewards = losses.kto_loss(
            sums[:n], ref[:n], good, kl, pref.beta, pref.kto_desirable_weight, pref.kto_undesirable_weight
        )
        metrics: Metrics = {"kl": kl}
        if bool(good.any()):
            metrics["rewards/chosen"] = rewards[good].mean()
        if bool((~good).any()):
            metrics["rewards/rejected"] = rewards[~good].mean()
        return per_example.mean(), metrics


class RewardObjective(Objective):
    """Reward model: Bradley-Terry loss on the scalar scores at each sample's last token."""

    def __call__(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Metrics]:
        from lmforge.models.reward import sequence_scores

        scores = sequence_scores(model, batch)
        n = scores.shape[0] // 2
        metrics = pair_metrics(scores[:n].detach(), scores[n:].detach())
        metrics["accuracy"] = metrics["rewards/accuracies"]
        return losses.reward_pair_loss(scores[:n], scores[n:]).mean(), metrics


OBJECTIVES: dict[str, type[Objective]] = {
    "dpo": DpoObjective,
    "simpo": SimpoObjective,
    "orpo": OrpoObjective,
    "kto": KtoObjective,
    "rm": RewardObjective,
}
