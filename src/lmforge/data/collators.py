"""Batch encoded rows into tensors: padding-free (default) or right-padded.

Padding-free concatenates the batch into one row with position ids restarting at 0 for every sample and no
attention_mask; transformers then derives a block-diagonal causal mask from the position ids, so samples never
attend to each other. Each sample's first label is -100 so no token predicts across a sample boundary.
The model must run with use_cache=False (config.use_cache): transformers only derives the packed mask when no
KV cache is passed, and a decoder given use_cache=True builds one even in training (see test_packing_model.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lmforge.config.schema import DataConfig
from lmforge.data.encode import IGNORE_INDEX

Row = dict[str, list[int]]


def _sample_positions(row: Row) -> list[int]:
    return list(row["position_ids"]) if "position_ids" in row else list(range(len(row["input_ids"])))


def collate_padding_free(rows: list[Row]) -> dict[str, Any]:
    """One concatenated row; packed rows keep their own position ids (already restarting per sample).

    Rows of one common length (pt blocks) need no concatenation: stacked as [batch, length] they hold no padding
    either, and with no mask at all SDPA takes its causal fast path."""
    import torch

    if len({len(row["input_ids"]) for row in rows}) == 1 and not any("position_ids" in row for row in rows):
        return {
            "input_ids": torch.tensor([row["input_ids"] for row in rows], dtype=torch.long),
            "labels": torch.tensor([row["labels"] for row in rows], dtype=torch.long),
        }
    input_ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for row in rows:
        pos = _sample_positions(row)
        input_ids += row["input_ids"]
        positions += pos
        labels += [IGNORE_INDEX if p == 0 else label for p, label in zip(pos, row["labels"], strict=True)]
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "labels": torch.tensor([labels], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
    }


class PaddedCollator:
    """Right padding with attention_mask and -100 labels on padding (a class so it pickles for workers)."""

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, rows: list[Row]) -> dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": [], "attention_mask": []}
        for row in rows:
            pad = width - len(row["input_ids"])
            batch["input_ids"].append(list(row["input_ids"]) + [self.pad_token_id] * pad)
            batch["labels"].append(list(row["labels"]) + [IGNORE_INDEX] * pad)
            batch["attention_mask"].append([1] * len(row["input_ids"]) + [0] * pad)
        return {key: torch.tensor(value, dtype=torch.long) for key, value in batch.items()}


def make_collator(
    data: DataConfig, tokenizer: Any, pad_to_multiple_of: int | None = None
) -> Callable[[list[Row]], dict[str, Any]]:
    """Packed rows always go padding-free: right padding with an attention_mask would drop their isolation."""
    if data.padding_free or data.packing:
        return collate_padding_free
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad_id is None:
        raise ValueError("padded batches need a tokenizer with a pad or EOS token")
    return PaddedCollator(pad_id, pad_to_multiple_of)
