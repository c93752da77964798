"""Prove a merged model computes what the adapter-wrapped model computes, and that the adapter did something.

A merge bug (wrong scaling, a skipped layer, a lost embedding row) changes the logits; a silently unapplied adapter
leaves them equal to the base model's. Both are checked on fixed inputs (QUALITY C10).
"""

from __future__ import annotations

from typing import Any

import torch

from lmforge.utils.errors import LmforgeError

MERGE_TOLERANCE = 1e-4  # max abs logit diff, merged vs unmerged, both fp32
MIN_ADAPTER_EFFECT = 1e-3  # merged must differ from the base by more than this
VERIFY_SHAPE = (2, 24)


class ExportError(LmforgeError):
    """The exported model failed a verification forward pass."""


def fixed_inputs(vocab_size: int, seed: int = 0) -> torch.Tensor:
    """The same token ids every time: seeded, independent of the global RNG."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, vocab_size, VERIFY_SHAPE, generator=generator)


@torch.no_grad()
def logits_of(model: Any, input_ids: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits.float()


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max())


def check_merge(merged: torch.Tensor, unmerged: torch.Tensor, base: torch.Tensor) -> dict[str, float]:
    """The two verification numbers; raises `ExportError` when either is out of bounds."""
    numbers = {"merged_vs_unmerged": max_abs_diff(merged, unmerged), "merged_vs_base": max_abs_diff(merged, base)}
    if not numbers["merged_vs_unmerged"] <= MERGE_TOLERANCE:  # `not <=` also catches NaN
        raise ExportError(
            f"merged model disagrees with the adapter model: max abs logit diff {numbers['merged_vs_unmerged']:.3g} "
            f"> {MERGE_TOLERANCE:g} (fp32); the merge is wrong, nothing was written"
        )
    if not numbers["merged_vs_base"] > MIN_ADAPTER_EFFECT:
        raise ExportError(
            f"merged model equals the base model (max abs logit diff {numbers['merged_vs_base']:.3g} <= "
            f"{MIN_ADAPTER_EFFECT:g}): the adapter was not applied (or is all zeros); nothing was written"
        )
    return numbers


def check_written(reloaded: Any, written: Any) -> None:
    """The files just written must hold exactly the tensors of the model they were written from."""
    ours = written.state_dict()
    theirs = reloaded.state_dict()
    bad = [k for k, v in ours.items() if k not in theirs or not torch.equal(theirs[k], v)]
    if bad:
        raise ExportError(f"the written model reloads with different weights ({', '.join(bad[:5])}); not published")


def check_written_logits(reloaded: torch.Tensor, unmerged: torch.Tensor, dtype: torch.dtype) -> float:
    """The exported files against the adapter model; enforced in fp32, recorded for half-precision exports."""
    diff = max_abs_diff(reloaded, unmerged)
    if dtype == torch.float32 and not diff <= MERGE_TOLERANCE:
        raise ExportError(f"the written model disagrees with the adapter model (max abs logit diff {diff:.3g})")
    return diff
