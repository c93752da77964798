"""`--fit`: what fits the memory budget. Peak memory grows with batch and cutoff_len and shrinks with each ZeRO
stage and offload, so each answer is a search over the same estimate."""

from __future__ import annotations

import dataclasses
from typing import Any

from lmforge.config.stages import stage_spec
from lmforge.estimate.batch_tokens import TokenStats
from lmforge.estimate.estimate_command import Inputs, components
from lmforge.estimate.hardware import human
from lmforge.estimate.memory import Plan, peak_bytes
from lmforge.utils.errors import ConfigError

ZERO_LADDER = ((0, False, False), (1, False, False), (2, False, False), (3, False, False), (3, True, False),
               (3, True, True))  # fmt: skip


def _peak(inputs: Inputs, plan: Plan, tokens: TokenStats | None = None) -> float:
    return peak_bytes(components(inputs, plan, tokens))


def fit_batch(inputs: Inputs, budget: float) -> tuple[Any, str]:
    """Largest per-device batch whose worst micro-batch fits (binary search up to the dataset size)."""
    low, high = 0, max(1, inputs.tokens.rows)
    while low < high:
        mid = (low + high + 1) // 2
        if _peak(inputs, dataclasses.replace(inputs.plan, batch=mid)) <= budget:
            low = mid
        else:
            high = mid - 1
    if low == 0:
        return 0, "not even batch 1 fits; try --fit zero, qlora, or gradient checkpointing"
    peak = _peak(inputs, dataclasses.replace(inputs.plan, batch=low))
    return low, f"train.per_device_train_batch_size={low} (peak {human(peak)})"


def fit_cutoff(inputs: Inputs, budget: float) -> tuple[Any, str]:
    """Largest cutoff_len (a multiple of 64) at which the longest rows, cut there, still fit."""
    lengths = inputs.tokens.lengths
    if inputs.tokens.padded and stage_spec(inputs.cfg.stage).is_online_rl:
        raise ConfigError("--fit cutoff_len: ppo/grpo sequences are prompt + rl.max_new_tokens; fit the batch instead")
    best = 0
    for cutoff in range(64, max(lengths) + 64, 64):
        cut = tuple(sorted((min(n, cutoff) for n in lengths), reverse=True))
        if _peak(inputs, inputs.plan, dataclasses.replace(inputs.tokens, lengths=cut)) <= budget:
            best = cutoff
        else:
            break
    if best == 0:
        return 0, "not even 64 tokens fit at this batch"
    if best >= max(lengths):
        return best, f"every row fits uncut at batch {inputs.plan.batch} (longest {max(lengths)} tokens)"
    return best, f"data.cutoff_len={best} at batch {inputs.plan.batch} (rows are cut to it in this search)"


def fit_zero(inputs: Inputs, budget: float) -> tuple[Any, str]:
    """The first of ZeRO-0, 1, 2, 3, 3 + optimizer offload, 3 + parameter offload that fits."""
    for stage, offload_opt, offload_params in ZERO_LADDER:
        plan = dataclasses.replace(inputs.plan, zero_stage=stage, offload_optimizer=offload_opt,
                                   offload_params=offload_params)  # fmt: skip
        peak = _peak(inputs, plan)
        if peak <= budget:
            extra = " + offload optimizer" * offload_opt + " + offload params" * offload_params
            return {"stage": stage, "offload_optimizer": offload_opt, "offload_params": offload_params}, (
                f"ZeRO-{stage}{extra} on {inputs.plan.gpus} GPU(s) (peak {human(peak)})"
            )
    return None, "nothing fits, even ZeRO-3 with offload; more GPUs or a smaller batch"
