"""Turn converted rows into training ids: sft (masked conversations), pt (EOS-joined blocks), and packing.

Encoded rows are ``{"input_ids": [...], "labels": [...]}`` with -100 where no loss is taken; packed rows add
``position_ids`` restarting at 0 per sample. Rows that cannot train are marked with a drop reason instead of
vanishing, so the report can count them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator
from typing import Any

from lmforge.config.schema import DataConfig
from lmforge.templates import ChatTemplate, Encoded
from lmforge.utils.errors import DataError

IGNORE_INDEX = -100
DROP_TOO_LONG = "longer than cutoff_len (truncation: drop)"
DROP_PROMPT_TOO_LONG = "no trainable tokens left after truncation"
DROP_NO_TRAINED = "no trainable tokens"
TOO_LONG_REASONS = (DROP_TOO_LONG, DROP_PROMPT_TOO_LONG)  # drops a larger data.cutoff_len would avoid


def require_template(template: ChatTemplate | None) -> ChatTemplate:
    """The template of a stage that renders conversations (every stage but pt has one)."""
    if template is None:
        raise DataError("conversations need a chat template to be encoded")
    return template


def has_trained_tokens(labels: list[int]) -> bool:
    """Label 0 never counts: collators mask each sample's first label so no target crosses samples."""
    return labels[1:].count(IGNORE_INDEX) < len(labels) - 1


def fit_to_cutoff(input_ids: list[int], labels: list[int], data: DataConfig) -> dict[str, Any]:
    """Apply the truncation policy; the result carries `_drop` ("" when kept), `_truncated` and `_eos_cut`."""
    row: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "_drop": "", "_truncated": False}
    row["_eos_cut"] = False
    row["_length"] = len(input_ids)
    if len(input_ids) > data.cutoff_len:
        if data.truncation == "drop":
            row["_drop"] = DROP_TOO_LONG
            return row
        row["input_ids"], row["labels"] = input_ids[: data.cutoff_len], labels[: data.cutoff_len]
        row["_truncated"] = True
        # the last trained token is the reply's end-of-turn/EOS; it is gone when the cut removes trained tokens
        row["_eos_cut"] = any(label != IGNORE_INDEX for label in labels[data.cutoff_len :])
        if not has_trained_tokens(row["labels"]):
            row["_drop"] = DROP_PROMPT_TOO_LONG
            return row
    if not has_trained_tokens(row["labels"]):
        row["_drop"] = DROP_NO_TRAINED
    return row


def encode_conversation(conv: dict[str, Any], template: ChatTemplate, tokenizer: Any, data: DataConfig) -> dict:
    """Replies and their end-of-turn tokens trained (only the last reply with mask_history), the rest masked."""
    return encode_conversations([conv], template, tokenizer, data)[0]


def encode_conversations(
    convs: list[dict[str, Any]], template: ChatTemplate, tokenizer: Any, data: DataConfig
) -> list[dict[str, Any]]:
    """`encode_conversation` for a batch: the template tokenises all their renderings at once."""
    encoded = template.encode_many(tokenizer, [(conv["messages"], conv.get("tools")) for conv in convs])
    return [_masked_row(conv, enc, tokenizer, data) for conv, enc in zip(convs, encoded, strict=True)]


def _masked_row(conv: dict[str, Any], encoded: Encoded, tokenizer: Any, data: DataConfig) -> dict[str, Any]:
    last = len(encoded.replies) - 1
    trained = [last] if data.mask_history else range(last + 1)
    row = fit_to_cutoff(encoded.input_ids, encoded.labels_for(trained, data.train_on_prompt), data)
    return with_template_counts(row, encoded)


def with_template_counts(row: dict[str, Any], encoded: Encoded) -> dict[str, Any]:
    """Add what the report counts about the encoding: special-token text kept as text (A16), tokens that
    straddle a reply edge, and a stop token appended to a format that ends replies with none."""
    row["_control_text"] = encoded.control_text
    row["_straddling"] = encoded.straddling
    row["_stop_appended"] = encoded.appended_stop
    return row


def encode_document(text: str, tokenizer: Any) -> list[int]:
    """A pretraining document: its tokens then EOS, so concatenated documents stay separated."""
    if tokenizer.eos_token_id is None:
        raise DataError("pt needs a tokenizer with an EOS token to separate documents")
    return tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def group_blocks(documents: Iterable[list[int]], block_size: int) -> Iterator[list[int]]:
    """Concatenate documents and cut into block_size blocks; the shorter tail comes last (kept, reported)."""
    buffer: list[int] = []
    for ids in documents:
        buffer.extend(ids)
        while len(buffer) >= block_size:
            yield buffer[:block_size]
            buffer = buffer[block_size:]
    if buffer:
        yield buffer


def plan_packing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Best-fit decreasing: indices per bin, each bin's lengths summing to <= capacity; deterministic."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []  # sorted (remaining space, bin index)
    for i in order:
        if lengths[i] > capacity:
            raise ValueError(f"sample {i} has {lengths[i]} tokens, more than the packing capacity {capacity}")
        pos = bisect.bisect_left(free, (lengths[i], -1))
        if pos == len(free):
            bins.append([i])
            bisect.insort(free, (capacity - lengths[i], len(bins) - 1))
            continue
        space, b = free.pop(pos)
        bins[b].append(i)
        bisect.insort(free, (space - lengths[i], b))
    return bins


def pack_rows(rows: list[dict[str, list[int]]]) -> dict[str, list[int]]:
    """One packed row: samples concatenated, positions restart at 0, each sample's first label masked."""
    packed: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for row in rows:
        packed["input_ids"] += row["input_ids"]
        packed["labels"] += [IGNORE_INDEX, *row["labels"][1:]]
        packed["position_ids"] += list(range(len(row["input_ids"])))
    return packed
