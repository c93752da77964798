"""The reference model of dpo/kto: what the policy's log-probs are compared with.

  * lora: the same model with the adapter disabled (no copy in memory); when training continues from an SFT
    adapter, that adapter loaded a second time, frozen, as adapter "reference" (the reference is the SFT model);
  * full/freeze: a frozen copy of the initial policy (or `pref.reference_model`);
  * `pref.precompute_ref_log_probs`: any of the above, run once over the dataset before training; the values are
    stored as dataset columns and the copy is freed.
Every reference forward runs in eval mode (no dropout) under no_grad, so a fixed batch always gets the same values.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch

from lmforge.alignment.batches import sequence_logps
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)
REFERENCE_ADAPTER = "reference"


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Eval mode (dropout off) and no_grad for the duration; the previous mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


class Reference:
    """Computes reference log-probs of a batch: `logps(batch) -> (sums, counts)`."""

    def __init__(self, model: Any, context: Callable[[], contextlib.AbstractContextManager] | None = None) -> None:
        self.model = model
        self.context = context or contextlib.nullcontext
        self.description = "frozen model"

    def logps(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        with self.context(), eval_mode(self.model):
            return sequence_logps(self.model, batch)


@contextlib.contextmanager
def _reference_adapter(model: Any) -> Iterator[None]:
    """Switch the active adapter to the frozen SFT copy and back; trainability of 'default' is restored."""
    active = model.active_adapter
    model.set_adapter(REFERENCE_ADAPTER, inference_mode=True)
    try:
        yield
    finally:
        model.set_adapter(active)


def adapter_reference(model: Any, sft_adapter: str | None) -> Reference:
    """lora: the adapter-disabled model, or (from an SFT adapter) that adapter loaded again as a frozen copy."""
    if sft_adapter:
        model.load_adapter(sft_adapter, adapter_name=REFERENCE_ADAPTER, is_trainable=False)
        reference = Reference(model, lambda: _reference_adapter(model))
        reference.description = f"the SFT adapter {sft_adapter} (frozen copy)"
        return reference
    reference = Reference(model, model.disable_adapter)
    reference.description = "the adapter-disabled model"
    return reference


def frozen_copy_reference(reference_model: Any) -> Reference:
    """full/freeze: a separate model, frozen and kept in eval mode."""
    reference_model.requires_grad_(False)
    reference_model.eval()
    return Reference(reference_model)


def precompute_reference_logps(
    dataset: Any, reference: Reference, collate: Callable, batch_size: int, columns: tuple[str, str]
) -> Any:
    """The dataset with two float columns of reference log-prob sums: (chosen, rejected) for pairs, (example,
    KL sample) for kto. Each batch holds B rows -> 2B samples whose first/second halves map to the columns."""
    first: list[float] = []
    second: list[float] = []
    device = next(reference.model.parameters()).device
    for start in range(0, len(dataset), batch_size):
        rows = dataset.select(range(start, min(start + batch_size, len(dataset)))).to_list()
        batch = {k: v.to(device) for k, v in collate(rows).items()}
        sums, _ = reference.logps(batch)
        first += sums[: len(rows)].tolist()
        second += sums[len(rows) :].tolist()
    logger.info("precomputed reference log-probs of %d rows with %s", len(dataset), reference.description)
    return dataset.add_column(columns[0], first).add_column(columns[1], second)
