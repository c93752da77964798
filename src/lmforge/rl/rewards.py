"""Reward sources and their weighted combination.

A source scores a `RewardBatch` and returns one float per completion, or None where it could not score one (an
AI judge that failed after its retries). Such samples are never scored as 0: their combined reward is NaN, the
trainers drop them from the advantages and the loss, and the count is logged (`rewards/excluded`).
Sources are built from the `rl:` config through the SOURCES registry: reward_model, callable, judge.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from lmforge.config.schema import RLConfig
from lmforge.templates import ChatTemplate, Message
from lmforge.utils.errors import ConfigError, LmforgeError
from lmforge.utils.logging import get_logger
from lmforge.utils.registry import Registry

logger = get_logger(__name__)


@dataclass
class RewardBatch:
    """Everything a reward source may look at, one entry per completion."""

    messages: list[list[Message]]  # the prompt conversation (ends with a user turn)
    completions: list[str]  # decoded completion text, special tokens skipped
    completion_ids: list[list[int]]  # completion token ids (policy tokenizer), stop token included when ended
    references: list[str | None]  # reference answer of the prompt row (alpaca output, ...) if the data has one
    ended: list[bool]  # the completion ended its turn before max_new_tokens

    @property
    def prompts(self) -> list[str]:
        return [prompt_text(m) for m in self.messages]

    def __len__(self) -> int:
        return len(self.completions)


def prompt_text(messages: list[Message]) -> str:
    """A single-turn prompt is the user's text; longer conversations are rendered as 'role: content' lines."""
    if len(messages) == 1:
        return str(messages[0]["content"])
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


class RewardSource(Protocol):
    name: str
    weight: float
    failures: Counter  # reason -> samples this source could not score (cumulative)
    causes: dict[str, str]  # reason -> the latest detail behind it (e.g. the models a judge endpoint serves)

    def score(self, batch: RewardBatch) -> list[float | None]: ...


class MissingRewardsError(LmforgeError):
    """Too many samples of a rollout got no reward: the run would train on almost nothing."""


@dataclass
class RewardResult:
    total: torch.Tensor  # (N,) weighted sum; NaN where any source failed
    per_source: dict[str, torch.Tensor] = field(default_factory=dict)
    failed: dict[str, Counter] = field(default_factory=dict)  # source -> reason -> samples failed in this batch

    @property
    def excluded(self) -> int:
        return int(torch.isnan(self.total).sum())

    def describe_missing(self, sources: list[RewardSource]) -> str:
        """'judge: 96 model_not_found (the endpoint serves: base)' for every source that failed in this batch."""
        parts = []
        for source in sources:
            for reason, count in self.failed.get(source.name, Counter()).items():
                cause = source.causes.get(reason)
                parts.append(f"{source.name}: {count} {reason}" + (f" ({cause})" if cause else ""))
        return "; ".join(parts) or "no source reported a reason"


def check_missing_rewards(result: RewardResult, sources: list[RewardSource], max_fraction: float) -> None:
    """Warn about every batch with missing rewards; stop once more than `max_fraction` of a batch is missing."""
    if not result.excluded:
        return
    n = len(result.total)
    message = f"{result.excluded} of {n} rollout samples got no reward: {result.describe_missing(sources)}"
    if result.excluded / n > max_fraction:
        raise MissingRewardsError(
            f"{message}. That is more than rl.max_missing_rewards ({max_fraction:g}) of the batch, so the run "
            "stopped instead of training on (almost) nothing; fix the reward source (or raise the threshold)."
        )
    logger.warning("%s; they are excluded from the update", message)


def combine(sources: list[RewardSource], batch: RewardBatch) -> RewardResult:
    """Score with every source and sum with the weights; a sample that any source failed on becomes NaN."""
    total = torch.zeros(len(batch), dtype=torch.float32)
    result = RewardResult(total)
    for source in sources:
        before = Counter(source.failures)
        scores = source.score(batch)
        if len(scores) != len(batch):
            raise ConfigError(f"reward source {source.name}: returned {len(scores)} scores for {len(batch)} samples")
        values = torch.tensor([math.nan if s is None else float(s) for s in scores], dtype=torch.float32)
        result.failed[source.name] = source.failures - before
        result.per_source[source.name] = values
        result.total = result.total + source.weight * values
    return result


SourceBuilder = Callable[[RLConfig, Any, ChatTemplate], list[RewardSource]]
SOURCES: Registry[SourceBuilder] = Registry("reward source")


def _reward_model_sources(rl: RLConfig, tokenizer: Any, template: ChatTemplate) -> list[RewardSource]:
    from lmforge.rl.reward_model import RewardModelSource

    return [RewardModelSource(rl.reward_model, rl.reward_model_weight, tokenizer, template)] if rl.reward_model else []


def _callable_sources(rl: RLConfig, tokenizer: Any, template: ChatTemplate) -> list[RewardSource]:
    from lmforge.rl.callables import CallableSource

    return [CallableSource.from_config(entry, f"rl.reward_funcs[{i}]") for i, entry in enumerate(rl.reward_funcs)]


def _judge_sources(rl: RLConfig, tokenizer: Any, template: ChatTemplate) -> list[RewardSource]:
    from lmforge.rl.judge import JudgeSource

    return [JudgeSource(rl.judge)] if rl.judge is not None else []


SOURCES.register("reward_model", _reward_model_sources)
SOURCES.register("callable", _callable_sources)
SOURCES.register("judge", _judge_sources)


def build_reward_sources(rl: RLConfig, tokenizer: Any, template: ChatTemplate) -> list[RewardSource]:
    """Every configured source, in a fixed order (reward model, callables, judge); at least one is required."""
    sources = [s for name in ("reward_model", "callable", "judge") for s in SOURCES.get(name)(rl, tokenizer, template)]
    if not sources:
        raise ConfigError("ppo/grpo need a reward: set rl.reward_model, rl.reward_funcs or rl.judge")
    return sources
