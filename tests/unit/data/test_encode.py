"""sft masks token by token, truncation policies (A7, C6), pt blocks (C18), packing plans."""

from __future__ import annotations

import dataclasses

import pytest

from lmforge.config.schema import DataConfig
from lmforge.data.encode import (
    DROP_PROMPT_TOO_LONG,
    DROP_TOO_LONG,
    IGNORE_INDEX,
    encode_conversation,
    encode_document,
    group_blocks,
    pack_rows,
    plan_packing,
)

M = IGNORE_INDEX
CONV = {
    "messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d"},
    ],
    "tools": None,
}


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _expected(tokenizer):
    """Prompt/response pieces of CONV under the fake ChatML template, written out by hand."""
    p1 = _ids(tokenizer, "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\n")
    r1 = _ids(tokenizer, "b<|im_end|>")
    p2 = _ids(tokenizer, "\n<|im_start|>user\nc<|im_end|>\n<|im_start|>assistant\n")
    r2 = _ids(tokenizer, "d<|im_end|>")
    return p1, r1, p2, r2, _ids(tokenizer, "\n")


def test_sft_masks_prompts_and_trains_every_response(tokenizer, template):
    p1, r1, p2, r2, end = _expected(tokenizer)
    row = encode_conversation(CONV, template, tokenizer, DataConfig(cutoff_len=100))
    assert row["input_ids"] == p1 + r1 + p2 + r2 + end
    assert row["labels"] == [M] * len(p1) + r1 + [M] * len(p2) + r2 + [M] * len(end)
    assert row["_drop"] == "" and not row["_truncated"]


def test_sft_mask_history_trains_only_the_last_turn(tokenizer, template):
    p1, r1, p2, r2, end = _expected(tokenizer)
    row = encode_conversation(CONV, template, tokenizer, DataConfig(cutoff_len=100, mask_history=True))
    assert row["labels"] == [M] * (len(p1) + len(r1) + len(p2)) + r2 + [M] * len(end)


def test_sft_train_on_prompt_trains_everything(tokenizer, template):
    row = encode_conversation(CONV, template, tokenizer, DataConfig(cutoff_len=100, train_on_prompt=True))
    assert row["labels"] == row["input_ids"]


def _long(prompt_len: int, response_len: int) -> dict:
    return {
        "messages": [
            {"role": "user", "content": "p" * prompt_len},
            {"role": "assistant", "content": "r" * response_len},
        ],
        "tools": None,
    }


@pytest.mark.parametrize("policy", ["drop", "truncate"])
def test_a7_prompt_three_times_cutoff_is_dropped_under_both_policies(tokenizer, template, policy):
    data = DataConfig(cutoff_len=40, truncation=policy)
    row = encode_conversation(_long(120, 5), template, tokenizer, data)
    assert row["_drop"] == (DROP_TOO_LONG if policy == "drop" else DROP_PROMPT_TOO_LONG)


def test_a7_c6_response_crossing_cutoff_truncates_with_aligned_labels_and_eos_flag(tokenizer, template):
    conv = _long(5, 50)
    full = encode_conversation(conv, template, tokenizer, DataConfig(cutoff_len=1000))
    drop = encode_conversation(conv, template, tokenizer, DataConfig(cutoff_len=40))
    assert drop["_drop"] == DROP_TOO_LONG
    cut = encode_conversation(conv, template, tokenizer, DataConfig(cutoff_len=40, truncation="truncate"))
    assert cut["_drop"] == "" and cut["_truncated"] and cut["_eos_cut"]
    assert cut["input_ids"] == full["input_ids"][:40] and cut["labels"] == full["labels"][:40]
    assert full["_length"] == cut["_length"] == len(full["input_ids"])


def test_pt_document_ends_with_eos_and_blocks_concatenate(tokenizer):
    eos = tokenizer.eos_token_id
    docs = [encode_document(t, tokenizer) for t in ("abc", "de", "fghij")]
    assert docs[0] == [*_ids(tokenizer, "abc"), eos]
    blocks = list(group_blocks(docs, 4))
    flat = [t for d in docs for t in d]
    assert blocks == [flat[0:4], flat[4:8], flat[8:12], flat[12:]]
    assert blocks[1] == [*_ids(tokenizer, "de"), eos, _ids(tokenizer, "f")[0]]  # EOS separates documents


def test_pt_blocks_through_the_pipeline_keep_labels_equal_to_inputs(tmp_path, tokenizer):
    from lmforge.data.pipeline import build_datasets

    from .helpers import make_cfg

    (tmp_path / "d.txt").write_text("abc\nde\nfghijk\n")
    cfg = make_cfg(tmp_path, [{"path": str(tmp_path / "d.txt"), "format": "text"}], stage="pt", cutoff_len=4)
    bundle = build_datasets(cfg, tokenizer, None)
    assert bundle.train["labels"] == bundle.train["input_ids"]
    assert [len(r) for r in bundle.train["input_ids"]] == [4, 4, 4, 2] and bundle.report.pt_tail_tokens == 2


def test_plan_packing_fits_capacity_deterministically():
    lengths = [9, 5, 3, 7, 2, 8, 1]
    bins = plan_packing(lengths, 10)
    assert sorted(i for b in bins for i in b) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in b) <= 10 for b in bins) and len(bins) == 4
    assert plan_packing(lengths, 10) == bins
    with pytest.raises(ValueError, match="more than the packing capacity"):
        plan_packing([11], 10)


def test_pack_rows_isolates_samples_at_the_data_level():
    rows = [{"input_ids": [1, 2, 3], "labels": [M, 2, 3]}, {"input_ids": [4, 5], "labels": [4, 5]}]
    assert pack_rows(rows) == {
        "input_ids": [1, 2, 3, 4, 5],
        "labels": [M, 2, 3, M, 5],
        "position_ids": [0, 1, 2, 0, 1],
    }


def test_packing_through_the_pipeline(tmp_path, tokenizer, template):
    import json

    from lmforge.data.pipeline import build_datasets

    from .helpers import make_cfg

    rows = [{"instruction": "q" * n, "output": "a"} for n in (1, 2, 3, 4, 5, 6)]
    (tmp_path / "a.json").write_text(json.dumps(rows))
    cfg = make_cfg(tmp_path, [{"path": str(tmp_path / "a.json"), "format": "alpaca"}], cutoff_len=80, packing=True)
    bundle = build_datasets(cfg, tokenizer, template)
    assert bundle.report.packed_from == 6 and len(bundle.train) < 6
    for row in bundle.train:
        starts = [i for i, p in enumerate(row["position_ids"]) if p == 0]
        assert len(row["input_ids"]) <= 80 and all(row["labels"][i] == M for i in starts)
    plain = build_datasets(
        dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, packing=False)), tokenizer, template
    )
    assert sum(len(r) for r in bundle.train["input_ids"]) == sum(len(r) for r in plain.train["input_ids"])
