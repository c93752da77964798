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
from lmforge.utils.errors import ConfigError
from lmforge.utils.registry import Registry


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

    def score(self, batch: RewardBatch) -> list[float | None]: ...


@dataclass
class RewardResult:
    total: torch.Tensor  # (N,) weighted sum; NaN where any source failed
    per_source: dict[str, torch.Tensor] = field(default_factory=dict)

    @property
    def excluded(self) -> int:
        return int(torch.isnan(self.total).sum())


def combine(sources: list[RewardSource], batch: RewardBatch) -> RewardResult:
    """Score with every source and sum with the weights; a sample that any source failed on becomes NaN."""
    total = torch.zeros(len(batch), dtype=torch.float32)
    result = RewardResult(total)
    for source in sources:
        scores = source.score(batch)
        if len(scores) != len(batch):
            raise ConfigError(f"reward source {source.name}: returned {len(scores)} scores for {len(batch)} samples")
        values = torch.tensor([math.nan if s is None else float(s) for s in scores], dtype=torch.float32)
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
