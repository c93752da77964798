"""A reward model trained by stage rm as a reward source (lmforge.models.reward.load_reward_model).

The RM scores token ids encoded with its own tokenizer and template, exactly as stage rm encoded its training
pairs: the prompt conversation plus the decoded completion as the assistant turn, through
`ChatTemplate.encode`. With the policy's template this is the rollout's ids plus the template's turn suffix
(e.g. ChatML's newline after <|im_end|>); with another template (or tokenizer) the text is re-encoded, so the RM
never scores ids that mean something else to it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from lmforge.rl.rewards import RewardBatch
from lmforge.templates import ChatTemplate


class RewardModelSource:
    name = "reward_model"

    def __init__(self, path: str, weight: float, tokenizer: Any, template: ChatTemplate) -> None:
        from lmforge.models.reward import load_reward_model

        self.rm = load_reward_model(path)
        self.weight = weight
        self.failures: Counter = Counter()
        self.causes: dict[str, str] = {}

    def score(self, batch: RewardBatch) -> list[float | None]:
        sequences = [self.encode(m, c) for m, c in zip(batch.messages, batch.completions, strict=True)]
        return [float(s) for s in self.rm.score(sequences).float().cpu().tolist()]

    def encode(self, messages: list[dict], completion: str) -> list[int]:
        conversation = [*messages, {"role": "assistant", "content": completion}]
        return self.rm.template.encode(self.rm.tokenizer, conversation).input_ids
