"""Tokens per micro-batch and per step of the real dataset at this cutoff_len, as training will batch them.

The rows come from `build_datasets`, the same encoding, truncation, dropping and packing `lmforge data preview`
reports. Padding-free batches hold the sum of their rows' lengths; padded ones (prompt methods, or
data.padding_free false) hold batch x longest row. Memory is priced at the worst micro-batch the data allows (the
`batch` longest rows together), time at the mean.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config.methods import method_spec
from lmforge.config.schema import RunConfig
from lmforge.config.stages import stage_spec
from lmforge.data.encode import IGNORE_INDEX
from lmforge.data.pairwise import row_sides


@dataclass(frozen=True)
class TokenStats:
    rows: int  # training rows (packed rows when packing)
    lengths: tuple[int, ...]  # tokens per row, every side of a preference pair summed (sorted, longest first)
    longest_side: int  # longest single sequence (attention span)
    padded: bool
    rollout_lengths: tuple[int, ...] = ()  # ppo/grpo: prompt + max_new_tokens per prompt
    logit_tokens: tuple[int, ...] = ()  # preference stages: positions sent through the output head, per row

    def peak_logit_tokens(self, batch: int) -> int:
        """Positions whose logits are computed in the largest micro-batch (preference stages: trained ones only)."""
        if not self.logit_tokens:
            return self.peak_tokens(batch)
        return sum(self.logit_tokens[:batch])

    def peak_tokens(self, batch: int) -> int:
        """Tokens in the largest micro-batch: the `batch` longest rows (padded: batch x the longest)."""
        if self.padded:
            return batch * self.lengths[0]
        return sum(self.lengths[:batch])

    def mean_tokens(self, batch: int) -> float:
        mean = sum(self.lengths) / len(self.lengths)
        return batch * (self.lengths[0] if self.padded else mean)


def token_stats(cfg: RunConfig, tokenizer: object) -> TokenStats:
    from lmforge.data.pipeline import build_datasets

    spec = stage_spec(cfg.stage)
    template = None
    if spec.needs_template:
        from lmforge.templates import get_template

        template = get_template(cfg.data.template, tokenizer)
    if spec.is_online_rl:
        from lmforge.data.rl_prompts import build_prompt_datasets

        assert template is not None  # every stage but pt renders with a template

        prompts = build_prompt_datasets(cfg, tokenizer, template)
        lengths = sorted((len(ids) + cfg.rl.max_new_tokens for ids in prompts.train["prompt_ids"]), reverse=True)
        return TokenStats(len(lengths), tuple(lengths), lengths[0], True, tuple(lengths))
    bundle = build_datasets(cfg, tokenizer, template)
    per_row, trained, longest = [], [], 0
    for row in bundle.train:
        sides = [side for _, side in row_sides(row)]
        per_row.append(sum(len(side["input_ids"]) for side in sides))
        trained.append(sum(sum(label != IGNORE_INDEX for label in side["labels"][1:]) for side in sides))
        longest = max(longest, *(len(side["input_ids"]) for side in sides))
    prompt_method = method_spec(cfg.method.name).needs_padded_rows
    padded = prompt_method or not cfg.data.padding_free
    if prompt_method:
        per_row = [n + cfg.method.prompt_virtual_tokens for n in per_row]
    order = sorted(range(len(per_row)), key=lambda i: -per_row[i])
    # preference batches send only trained positions through the head (alignment/batches.py: logits_to_keep)
    logits = tuple(trained[i] for i in order) if spec.is_preference else ()
    return TokenStats(len(per_row), tuple(per_row[i] for i in order), longest, padded, logit_tokens=logits)
