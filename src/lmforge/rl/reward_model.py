"""A reward model trained by stage rm as a reward source (lmforge.models.reward.load_reward_model).

The RM scores token ids encoded with its own tokenizer and template. When those are the policy's (same
template, same vocabulary) the rollout's ids are scored as they are; otherwise the conversation plus the decoded
completion is re-encoded with the RM's template, exactly as its training data was.
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
        self.tokenizer, self.template = tokenizer, template
        self.same_encoding = same_encoding(tokenizer, template, self.rm.tokenizer, self.rm.template)

    def score(self, batch: RewardBatch) -> list[float | None]:
        sequences = [
            self.encode(m, c, ids)
            for m, c, ids in zip(batch.messages, batch.completions, batch.completion_ids, strict=True)
        ]
        return [float(s) for s in self.rm.score(sequences).float().cpu().tolist()]

    def encode(self, messages: list[dict], completion: str, completion_ids: list[int]) -> list[int]:
        if self.same_encoding:
            return self.template.encode_prompt(self.tokenizer, messages) + completion_ids
        turns = self.rm.template.encode_turns(
            self.rm.tokenizer, [*messages, {"role": "assistant", "content": completion}]
        )
        return [i for turn in turns for i in (*turn.prompt_ids, *turn.response_ids)]


def same_encoding(tokenizer: Any, template: ChatTemplate, rm_tokenizer: Any, rm_template: ChatTemplate) -> bool:
    """Whether policy ids mean the same text to the RM: same template family and identical vocabulary."""
    if template.name != rm_template.name or len(tokenizer) != len(rm_tokenizer):
        return False
    return tokenizer is rm_tokenizer or tokenizer.get_vocab() == rm_tokenizer.get_vocab()
