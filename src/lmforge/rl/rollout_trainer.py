"""RolloutTrainer: the shared loop of the online stages on top of LmforgeTrainer.

Why a subclass (and not TRL): TRL 1.x has no PPO trainer and its GRPO renders prompts with the tokenizer's own
chat template, while lmforge must prompt exactly as SFT trained (ChatTemplate.encode_prompt). Subclassing
LmforgeTrainer keeps the sealed atomic checkpoints, resume, logging, gradient accumulation and DDP of the HF
Trainer; only `compute_loss` changes: the "batch" a step receives is a batch of prompts, from which the step
samples a rollout (or reuses the current one, `rl.ppo_epochs` times) and returns the policy loss on it.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections import Counter, defaultdict
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any, cast

import torch
from transformers import PreTrainedTokenizerBase

from lmforge.config.schema import RLConfig
from lmforge.rl.rewards import RewardBatch, RewardResult, RewardSource, check_missing_rewards, combine
from lmforge.rl.rollout import Rollout, generate_rollout, sampling_options
from lmforge.templates import ChatTemplate
from lmforge.training.sealed_trainer import LmforgeTrainer
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)
RL_STATE = "rl_state.json"


def prompt_collator(features: list[dict[str, Any]]) -> dict[str, Any]:
    """A batch of prompts stays a batch of Python lists: the step generates the tensors it trains on."""
    return {
        "prompt_ids": [list(f["prompt_ids"]) for f in features],
        "messages": [json.loads(f["messages"]) for f in features],
        "reference": [f["reference"] for f in features],
    }


class RolloutTrainer(LmforgeTrainer, ABC):
    """Generation, reward scoring, the rollout buffer and RL metrics; subclasses define rollouts and losses."""

    loss_is_likelihood = False

    def __init__(
        self,
        *args: Any,
        rl: RLConfig,
        template: ChatTemplate,
        reward_sources: list[RewardSource],
        ref_model: Any | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        tokenizer = cast(PreTrainedTokenizerBase, self.processing_class)  # rollouts decode text: always a tokenizer
        self.text_tokenizer = tokenizer
        self.rl, self.template, self.reward_sources = rl, template, reward_sources
        self.stop_ids = template.stop_token_ids(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.ref_model = ref_model.to(self.args.device) if ref_model is not None else None
        self.model_accepts_loss_kwargs = False  # our loss is a mean already; the Trainer divides by GA steps
        self._buffer: Any | None = None
        self._buffer_uses = 0
        self._metrics: dict[str, list[float]] = defaultdict(list)
        self.excluded_total = 0

    # --- the step -------------------------------------------------------------------------------------------
    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        if self._buffer is None or self._buffer_uses >= self.rl.ppo_epochs:
            self._buffer = self.make_rollout(model, inputs)
            self._buffer_uses = 0
        self._buffer_uses += 1
        loss = self.rollout_loss(model, self._buffer)
        return (loss, None) if return_outputs else loss

    @abstractmethod
    def make_rollout(self, model: Any, inputs: dict[str, Any]) -> Any:
        """Sample and score completions for a batch of prompts; the buffer the next `ppo_epochs` steps train on."""

    @abstractmethod
    def rollout_loss(self, model: Any, buffer: Any) -> torch.Tensor:
        """The stage's loss on the current rollout buffer (recomputing the policy's log-probs)."""

    # --- shared pieces ---------------------------------------------------------------------------------------
    def generation_model(self, model: Any) -> Any:
        """The causal LM to sample from (DDP and the PPO value wrapper unwrapped)."""
        return self.accelerator.unwrap_model(model)

    def sample(self, model: Any, inputs: dict[str, Any]) -> tuple[Rollout, RewardBatch]:
        """`rl.num_generations` completions per prompt, consecutive per prompt (groups), and their reward batch."""
        n = self.rl.num_generations
        prompts = [ids for ids in inputs["prompt_ids"] for _ in range(n)]
        options = sampling_options(self.rl.max_new_tokens, self.rl.temperature, self.rl.top_p, self.rl.top_k)
        rollout = generate_rollout(self.generation_model(model), prompts, self.stop_ids, self.pad_id, options)
        batch = RewardBatch(
            messages=[m for m in inputs["messages"] for _ in range(n)],
            completions=self.text_tokenizer.batch_decode(rollout.completion_ids, skip_special_tokens=True),
            completion_ids=rollout.completion_ids,
            references=[r for r in inputs["reference"] for _ in range(n)],
            ended=rollout.ended.tolist(),
        )
        self.state.num_input_tokens_seen += int(rollout.attention_mask.sum())
        return rollout, batch

    def score(self, batch: RewardBatch) -> torch.Tensor:
        """Combined rewards (NaN = excluded), with the missing-EOS penalty and the reward metrics recorded."""
        result: RewardResult = combine(self.reward_sources, batch)
        check_missing_rewards(result, self.reward_sources, self.rl.max_missing_rewards)
        rewards = result.total
        if self.rl.missing_eos_penalty is not None:
            rewards = rewards - self.rl.missing_eos_penalty * (~torch.tensor(batch.ended)).float()
        valid = ~torch.isnan(rewards)
        self.excluded_total += result.excluded
        self._record("reward", rewards[valid].mean().item() if valid.any() else float("nan"))
        self._record("reward_std", rewards[valid].std().item() if valid.sum() > 1 else 0.0)
        for name, values in result.per_source.items():
            ok = ~torch.isnan(values)
            self._record(f"rewards/{name}", values[ok].mean().item() if ok.any() else float("nan"))
        self._record("rewards/excluded", float(result.excluded))
        lengths = [len(ids) for ids in batch.completion_ids]
        self._record("completion_length", sum(lengths) / len(lengths))
        self._record("completions_ended", sum(batch.ended) / len(batch.ended))
        return rewards

    def reference_context(self, model: Any) -> tuple[Any, AbstractContextManager]:
        """The reference model and the context to run it in: a frozen copy, or the policy with adapters off."""
        if self.ref_model is not None:
            return self.ref_model, nullcontext()
        policy = self.generation_model(model)
        return policy, policy.disable_adapter()

    def _record(self, name: str, value: float) -> None:
        self._metrics[name].append(float(value))

    # --- logging and checkpoint state ------------------------------------------------------------------------
    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Training logs get the means of the RL metrics since the last log, and the failure counters."""
        if "loss" in logs:
            for name, values in self._metrics.items():
                finite = [v for v in values if v == v]
                logs[name] = sum(finite) / len(finite) if finite else float("nan")
            self._metrics.clear()
            logs["rewards/excluded_total"] = float(self.excluded_total)
            for source in self.reward_sources:
                for reason, count in source.failures.items():
                    logs[f"rewards/{source.name}_failed_{reason}"] = float(count)
        super().log(logs, start_time)

    def rl_state(self) -> dict[str, Any]:
        """Extra state saved in each checkpoint (rl_state.json) and restored on resume."""
        return {
            "excluded_total": self.excluded_total,
            "failures": {s.name: dict(s.failures) for s in self.reward_sources},
        }

    def load_rl_state(self, state: dict[str, Any]) -> None:
        self.excluded_total = int(state.get("excluded_total", 0))
        for source in self.reward_sources:
            source.failures = Counter(state.get("failures", {}).get(source.name, {}))

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        super()._save_optimizer_and_scheduler(output_dir)
        if self.args.should_save:
            (Path(output_dir) / RL_STATE).write_text(json.dumps(self.rl_state(), indent=1), encoding="utf-8")

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        path = Path(checkpoint) / RL_STATE if checkpoint else None
        if path is not None and path.is_file():
            self.load_rl_state(json.loads(path.read_text(encoding="utf-8")))
            logger.info("restored the RL state from %s", path)
