"""Collators: padding-free concatenation (default) and right padding."""

from __future__ import annotations

import pytest

from lmforge.config.schema import DataConfig
from lmforge.data.collators import PaddedCollator, collate_padding_free, make_collator

M = -100
ROWS = [{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}, {"input_ids": [4, 5], "labels": [M, 5]}]


def test_padding_free_is_one_row_with_restarting_positions_and_no_attention_mask():
    batch = collate_padding_free(ROWS)
    assert set(batch) == {"input_ids", "labels", "position_ids"}
    assert batch["input_ids"].tolist() == [[1, 2, 3, 4, 5]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[M, 2, 3, M, 5]]


def test_padding_free_keeps_packed_rows_positions():
    packed = {"input_ids": [1, 2, 3, 4], "labels": [M, 2, M, 4], "position_ids": [0, 1, 0, 1]}
    batch = collate_padding_free([packed, ROWS[1]])
    assert batch["position_ids"].tolist() == [[0, 1, 0, 1, 0, 1]]
    assert batch["labels"].tolist() == [[M, 2, M, 4, M, 5]]


@pytest.mark.parametrize(("multiple", "width"), [(None, 3), (4, 4)])
def test_padded_right_pads_with_mask_and_ignored_labels(multiple, width):
    batch = PaddedCollator(pad_token_id=0, pad_to_multiple_of=multiple)(ROWS)
    pad = width - 2
    assert batch["input_ids"].tolist() == [[1, 2, 3] + [0] * (width - 3), [4, 5] + [0] * pad]
    assert batch["attention_mask"].tolist() == [[1, 1, 1] + [0] * (width - 3), [1, 1] + [0] * pad]
    assert batch["labels"].tolist() == [[1, 2, 3] + [M] * (width - 3), [M, 5] + [M] * pad]


def test_make_collator_picks_by_config(tokenizer):
    assert make_collator(DataConfig(), tokenizer) is collate_padding_free
    assert make_collator(DataConfig(padding_free=False, packing=True), tokenizer) is collate_padding_free
    padded = make_collator(DataConfig(padding_free=False), tokenizer)
    assert isinstance(padded, PaddedCollator) and padded.pad_token_id == tokenizer.pad_token_id


def test_equal_length_rows_are_stacked_and_train_exactly_like_the_concatenated_row():
    """pt blocks share one length: stacked [B, L] without a mask equals the isolated concatenated row."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    rows = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 64, (3, 6)).tolist()]
    stacked = collate_padding_free(rows)
    assert set(stacked) == {"input_ids", "labels"} and stacked["input_ids"].shape == (3, 6)
    concatenated = collate_padding_free([*rows, {"input_ids": [1, 2], "labels": [1, 2]}])  # unequal: one row
    concatenated = {k: v[:, :18] for k, v in concatenated.items()}  # the same three samples
    config = LlamaConfig(
        vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64
    )
    model = LlamaForCausalLM(config)
    model.config.use_cache = False
    loss_stacked = model(**stacked).loss
    loss_concatenated = model(**concatenated).loss
    torch.testing.assert_close(loss_stacked, loss_concatenated, atol=1e-6, rtol=0)
