"""Padding-free preference batches and per-sample log-probabilities from one forward.

A batch of B pairs becomes ONE row: the B chosen samples, then the B rejected samples, concatenated with position
ids restarting at 0 per sample (the packed SDPA of models/attention.py keeps samples isolated). One forward then
serves chosen and rejected alike, with no padding at all. Only the positions that predict a trained token are sent
through the output head (`logits_to_keep` = those positions), so prompt tokens never cost a vocabulary projection.
"""

from __future__ import annotations

from typing import Any

import torch

from lmforge.data.encode import IGNORE_INDEX

Sample = tuple[list[int], list[int]]  # (input_ids, labels)


def pack_samples(samples: list[Sample]) -> dict[str, torch.Tensor]:
    """One row of samples with restarting positions; targets (position, next id, sample index) of trained tokens.

    Position p of the row predicts token p + 1, so sample k's trained label j >= 1 is a target at offset + j - 1;
    label 0 is never a target (nothing in the sample precedes it).
    """
    input_ids: list[int] = []
    positions: list[int] = []
    target_positions: list[int] = []
    target_ids: list[int] = []
    target_segments: list[int] = []
    last_positions: list[int] = []
    for k, (ids, labels) in enumerate(samples):
        offset = len(input_ids)
        input_ids += ids
        positions += range(len(ids))
        for j in range(1, len(labels)):
            if labels[j] != IGNORE_INDEX:
                target_positions.append(offset + j - 1)
                target_ids.append(labels[j])
                target_segments.append(k)
        last_positions.append(len(input_ids) - 1)
    return {
        "input_ids": torch.tensor([input_ids], dtype=torch.long),
        "position_ids": torch.tensor([positions], dtype=torch.long),
        "target_positions": torch.tensor(target_positions, dtype=torch.long),
        "target_ids": torch.tensor(target_ids, dtype=torch.long),
        "target_segments": torch.tensor(target_segments, dtype=torch.long),
        "last_positions": torch.tensor(last_positions, dtype=torch.long),
    }


def _ref_columns(rows: list[dict[str, Any]], names: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """Precomputed reference log-probs carried by the rows, as float64 -> float32 tensors (absent: nothing)."""
    if not rows or names[0] not in rows[0]:
        return {}
    return {name: torch.tensor([row[name] for row in rows], dtype=torch.float32) for name in names}


def collate_pairs(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Pairs -> [chosen_1..chosen_B, rejected_1..rejected_B] in one padding-free row."""
    samples = [(r["chosen_input_ids"], r["chosen_labels"]) for r in rows]
    samples += [(r["rejected_input_ids"], r["rejected_labels"]) for r in rows]
    return {**pack_samples(samples), **_ref_columns(rows, ("ref_chosen_logps", "ref_rejected_logps"))}


def add_kl_samples(dataset: Any) -> Any:
    """KTO rows plus `kl_input_ids`/`kl_labels`: row i's prompt with the completion of row i+1 (a fixed partner,
    so precomputed reference log-probs stay valid whatever the batch order). The mean log-ratio of these
    mismatched completions estimates the KL reference point z0 (KTO paper; TRL does the same)."""
    rows = dataset.select_columns(["input_ids", "labels", "prompt_len"]).to_dict()
    kl_ids, kl_labels = [], []
    n = len(rows["input_ids"])
    for i in range(n):
        j = (i + 1) % n
        cut, other_cut = rows["prompt_len"][i], rows["prompt_len"][j]
        kl_ids.append(list(rows["input_ids"][i][:cut]) + list(rows["input_ids"][j][other_cut:]))
        kl_labels.append([IGNORE_INDEX] * cut + list(rows["labels"][j][other_cut:]))
    return dataset.add_column("kl_input_ids", kl_ids).add_column("kl_labels", kl_labels)


def collate_kto(rows: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
    """Examples, then their KL samples (see `add_kl_samples`), in one padding-free row."""
    samples = [(r["input_ids"], r["labels"]) for r in rows] + [(r["kl_input_ids"], r["kl_labels"]) for r in rows]
    batch = pack_samples(samples)
    batch["kto_label"] = torch.tensor([bool(r["kto_label"]) for r in rows], dtype=torch.bool)
    return {**batch, **_ref_columns(rows, ("ref_logps", "ref_kl_logps"))}


def sequence_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of log-probs of each sample's trained tokens, their count), one value per sample, in fp32."""
    out = model(
        input_ids=batch["input_ids"],
        position_ids=batch["position_ids"],
        logits_to_keep=batch["target_positions"],
        use_cache=False,
    )
    logits = out.logits[0].float()
    token_logps = logits.gather(-1, batch["target_ids"][:, None]).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    segments = batch["last_positions"].shape[0]
    sums = torch.zeros(segments, dtype=token_logps.dtype, device=token_logps.device)
    sums = sums.index_add(0, batch["target_segments"], token_logps)
    counts = torch.bincount(batch["target_segments"], minlength=segments).to(token_logps.dtype)
    return sums, counts
