"""Encode preference pairs and KTO examples with exactly the SFT template and masking.

A pair {"prompt", "chosen", "rejected"} becomes two sft-style rows, prompt + chosen and prompt + rejected, each
encoded by the template in one batch call: prompt ids masked (-100), response ids trained. Only the response
turns (those after the prompt) are trained, as sft with `mask_history` would for a one-turn response, so the
prompt's earlier assistant turns never count in a log-prob. The cutoff applies to each side with the sft policy
(drop, or truncate the response); if either side is dropped the pair is dropped, counted under that reason.
"""

from __future__ import annotations

from typing import Any

from lmforge.config.schema import DataConfig
from lmforge.data.encode import fit_to_cutoff, with_template_counts
from lmforge.templates import ChatTemplate, Encoded
from lmforge.utils.errors import DataError


def _response_row(encoded: Encoded, prompt_turns: int, data: DataConfig) -> dict[str, Any]:
    """ids of a whole conversation; labels only on the replies after the prompt's `prompt_turns` replies."""
    if len(encoded.replies) <= prompt_turns:
        raise DataError("the response has no assistant turn to train on")
    row = fit_to_cutoff(encoded.input_ids, encoded.labels_for(range(prompt_turns, len(encoded.replies))), data)
    return with_template_counts(row, encoded)


def _assistant_turns(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if m["role"] == "assistant")


def encode_pairs(
    pairs: list[dict[str, Any]], template: ChatTemplate, tokenizer: Any, data: DataConfig
) -> list[dict[str, Any]]:
    """Rows with chosen_/rejected_ input_ids and labels plus the pair's drop/truncation flags."""
    conversations = []
    for pair in pairs:
        conversations.append((pair["prompt"] + pair["chosen"], pair.get("tools")))
        conversations.append((pair["prompt"] + pair["rejected"], pair.get("tools")))
    all_encoded = template.encode_many(tokenizer, conversations)
    rows = []
    for i, pair in enumerate(pairs):
        prompt_turns = _assistant_turns(pair["prompt"])
        chosen = _response_row(all_encoded[2 * i], prompt_turns, data)
        rejected = _response_row(all_encoded[2 * i + 1], prompt_turns, data)
        rows.append(
            {
                "chosen_input_ids": chosen["input_ids"],
                "chosen_labels": chosen["labels"],
                "rejected_input_ids": rejected["input_ids"],
                "rejected_labels": rejected["labels"],
                "_drop": chosen["_drop"] or rejected["_drop"],
                "_truncated": chosen["_truncated"] or rejected["_truncated"],
                "_eos_cut": chosen["_eos_cut"] or rejected["_eos_cut"],
                "_length": max(chosen["_length"], rejected["_length"]),
                "_control_text": chosen["_control_text"] or rejected["_control_text"],
                "_straddling": chosen["_straddling"] + rejected["_straddling"],
                "_stop_appended": chosen["_stop_appended"] or rejected["_stop_appended"],
            }
        )
    return rows


def encode_kto(examples: list[dict[str, Any]], template: ChatTemplate, tokenizer: Any, data: DataConfig) -> list[dict]:
    """Rows with input_ids, labels (only the judged last turn trained), kto_label and prompt_len (the ids before
    the judged response, so the collator can pair prompts with other examples' completions for the KL term)."""
    all_encoded = template.encode_many(tokenizer, [(ex["messages"], ex.get("tools")) for ex in examples])
    rows = []
    for example, encoded in zip(examples, all_encoded, strict=True):
        row = _response_row(encoded, len(encoded.replies) - 1, data)
        row["kto_label"] = bool(example["label"])
        prompt_len = encoded.replies[-1][0]
        row["prompt_len"] = max(1, min(prompt_len, len(row["input_ids"]) - 1))  # >= 1 id each side after a cut
        rows.append(row)
    return rows


def row_sides(row: dict[str, Any]) -> list[tuple[str, dict[str, list[int]]]]:
    """The sft-shaped rows inside an encoded row, named: chosen/rejected of a pair, one judged KTO example (its
    label in the name), or the row itself; `lmforge data preview` shows and dumps each."""
    if "chosen_input_ids" in row:
        return [(side, {"input_ids": row[f"{side}_input_ids"], "labels": row[f"{side}_labels"]}) for side in
                ("chosen", "rejected")]  # fmt: skip
    if "kto_label" in row:
        return [("desirable" if row["kto_label"] else "undesirable", row)]
    return [("", row)]
