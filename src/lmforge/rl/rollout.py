"""Rollouts: sample completions for prompt ids built by the training template, as one left-padded batch.

Prompts are exactly `ChatTemplate.encode_prompt` ids (the one prompt builder, as SFT, chat and serving use) and
sampling stops on every end-of-turn id of the template. A completion keeps its stop token: it is the token that
ends the turn, and SFT trains it too, so the policy learns when to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from lmforge.inference.engine import GenerationOptions, pad_left


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


def cut_at_stop(row: list[int], stop_ids: set[int]) -> tuple[list[int], bool]:
    """The completion up to and including its first stop id, and whether one was found."""
    for i, token in enumerate(row):
        if token in stop_ids:
            return row[: i + 1], True
    return row, False


@torch.no_grad()
def generate_rollout(
    model: Any, prompts: list[list[int]], stop_ids: list[int], pad_id: int, options: GenerationOptions
) -> Rollout:
    """Sample one completion per prompt id list (repeat prompts for groups); the model's mode is restored."""
    input_ids, attention_mask = pad_left(prompts, pad_id)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        out = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            eos_token_id=stop_ids,
            pad_token_id=pad_id,
            use_cache=True,
            **options.generate_kwargs(),  # top_k 0 disables top-k in transformers
        )
    finally:
        model.train(was_training)
    return assemble(input_ids.to(device), attention_mask.to(device), out[:, input_ids.shape[1] :], stop_ids, pad_id)


def assemble(
    prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, generated: torch.Tensor, stop_ids: list[int], pad_id: int
) -> Rollout:
    """Cut each generated row at its first stop id and build the padded training rows."""
    stops = set(stop_ids)
    cut = [cut_at_stop(row, stops) for row in generated.tolist()]
    width = max(1, max(len(ids) for ids, _ in cut))
    completion = torch.full((len(cut), width), pad_id, dtype=prompt_ids.dtype, device=prompt_ids.device)
    completion_mask = torch.zeros((len(cut), width), dtype=prompt_mask.dtype, device=prompt_ids.device)
    for i, (ids, _) in enumerate(cut):
        if ids:
            completion[i, : len(ids)] = torch.tensor(ids, dtype=prompt_ids.dtype)
            completion_mask[i, : len(ids)] = 1
    return Rollout(
        input_ids=torch.cat([prompt_ids, completion], dim=1),
        attention_mask=torch.cat([prompt_mask, completion_mask], dim=1),
        completion_mask=completion_mask,
        completion_ids=[ids for ids, _ in cut],
        ended=torch.tensor([ended for _, ended in cut], device=prompt_ids.device),
    )
