"""Rollouts: sample completions for prompt ids built by the training template, with the one decode engine.

Prompts are exactly `ChatTemplate.encode_prompt` ids (the one prompt builder, as SFT, chat and serving use) and
decoding is the engine's (`inference.engine.generate_rows`, as chat, eval and serving use): all rows in one batch,
unseeded sampling from torch's global RNG (so a seeded run, and a resumed one, repeats its rollouts), stopping on
every end-of-turn id of the template. A completion keeps its stop token: it is the token that
ends the turn, and SFT trains it too, so the policy learns when to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lmforge.inference.decoding import pad_left
from lmforge.inference.engine import GenerationOptions, generate_rows


@dataclass
class Rollout:
    """A batch of prompt + completion rows: `input_ids` = [left-padded prompt | right-padded completion]."""

    input_ids: torch.Tensor  # (N, P + C)
    attention_mask: torch.Tensor  # (N, P + C)
    completion_mask: torch.Tensor  # (N, C): 1 on completion tokens up to and including the stop token
    completion_ids: list[list[int]]  # per row, the same tokens without padding
    ended: torch.Tensor  # (N,) bool: the completion ended its turn (False: cut at max_new_tokens)

    @property
    def completion_len(self) -> int:
        return self.completion_mask.shape[1]


def sampling_options(max_new_tokens: int, temperature: float, top_p: float, top_k: int) -> GenerationOptions:
    return GenerationOptions(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, top_k=top_k)


def generate_rollout(
    model: Any, prompts: list[list[int]], stop_ids: list[int], pad_id: int, options: GenerationOptions
) -> Rollout:
    """Sample one completion per prompt id list (repeat prompts for groups); the model's mode is restored."""
    was_training = model.training
    model.eval()
    try:
        generated = generate_rows(model, prompts, options, stop_ids, pad_id)
    finally:
        model.train(was_training)
    input_ids, attention_mask = pad_left(prompts, pad_id)
    device = next(model.parameters()).device
    completions = [[*g.ids, g.stop_id] if g.stop_id is not None else g.ids for g in generated]
    return assemble(input_ids.to(device), attention_mask.to(device), completions, [g.ended for g in generated], pad_id)


def assemble(
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    completions: list[list[int]],
    ended: list[bool],
    pad_id: int,
) -> Rollout:
    """The padded training rows from each prompt's completion (its stop id included when it `ended`)."""
    width = max(1, max(len(ids) for ids in completions))
    completion = torch.full((len(completions), width), pad_id, dtype=prompt_ids.dtype, device=prompt_ids.device)
    completion_mask = torch.zeros((len(completions), width), dtype=prompt_mask.dtype, device=prompt_ids.device)
    for i, ids in enumerate(completions):
        if ids:
            completion[i, : len(ids)] = torch.tensor(ids, dtype=prompt_ids.dtype)
            completion_mask[i, : len(ids)] = 1
    return Rollout(
        input_ids=torch.cat([prompt_ids, completion], dim=1),
        attention_mask=torch.cat([prompt_mask, completion_mask], dim=1),
        completion_mask=completion_mask,
        completion_ids=completions,
        ended=torch.tensor(ended, device=prompt_ids.device),
    )
