"""NEFTune (Jain et al. 2023): uniform noise on the input embeddings during training, scaled per *sample*.

The paper scales the noise by alpha / sqrt(L * d) with L the sequence length. transformers' `neftune_noise_alpha`
takes L = the row length, which is wrong for our padding-free batches, where one row concatenates many samples
(position ids restart at 0 for each): a short sample in a long row would get far too little noise. Here L is the
length of the sample each token belongs to, found from the position ids (or the attention mask of padded rows).
The hooks do nothing in eval mode, so evaluation and generation see clean embeddings.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


def sample_lengths(shape: torch.Size, position_ids: Any = None, attention_mask: Any = None) -> torch.Tensor:
    """[batch, seq] length of the sample each token belongs to."""
    batch, seq = shape[0], shape[1]
    if position_ids is not None and tuple(position_ids.shape) == (batch, seq):
        starts = torch.ones_like(position_ids, dtype=torch.bool)
        starts[:, 1:] = position_ids[:, 1:] <= position_ids[:, :-1]  # a position that does not grow starts a sample
        segment = starts.long().cumsum(dim=1) - 1  # sample index within the row
        counts = torch.zeros(batch, seq, dtype=torch.long, device=segment.device)
        counts.scatter_add_(1, segment, torch.ones_like(segment))
        return counts.gather(1, segment)
    if attention_mask is not None and tuple(attention_mask.shape) == (batch, seq):
        return attention_mask.sum(dim=1, keepdim=True).clamp(min=1).expand(batch, seq)
    return torch.full((batch, seq), seq, dtype=torch.long)


class NeftuneHook:
    """A forward pre-hook on the model (to see position_ids / attention_mask) and a forward hook on its input
    embedding (to add the noise)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self._batch: dict[str, Any] = {}

    def capture(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        self._batch = {k: kwargs.get(k) for k in ("position_ids", "attention_mask")}

    def add_noise(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        if not module.training:
            return output
        batch, self._batch = self._batch, {}
        lengths = sample_lengths(output.shape, batch.get("position_ids"), batch.get("attention_mask"))
        scale = self.alpha / torch.sqrt(lengths.to(output.device, torch.float32) * output.shape[-1])
        noise = torch.empty_like(output).uniform_(-1, 1) * scale.unsqueeze(-1).to(output.dtype)
        return output + noise


def add_neftune(model: Any, alpha: float) -> NeftuneHook:
    """Attach NEFTune to `model` (the object the Trainer calls); returns the hook (its handles live on the model)."""
    hook = NeftuneHook(alpha)
    model.register_forward_pre_hook(hook.capture, with_kwargs=True)
    model.get_input_embeddings().register_forward_hook(hook.add_noise)
    return hook
