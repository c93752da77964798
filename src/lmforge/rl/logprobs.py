"""Per-token log-probabilities of completion tokens under a causal LM, for left-padded prompt + completion rows."""

from __future__ import annotations

from typing import Any

import torch


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counting real tokens only, as `generate` computes them for left-padded rows.

    Padding positions get 1 rather than 0, so a single left-padded row is never mistaken for a packed
    padding-free row (whose positions restart at 0, models/attention.py); their outputs are masked anyway.
    """
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def gather_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[token] per position, computed row by row to bound the (T, vocab) float32 buffer."""
    out = []
    for row_logits, row_tokens in zip(logits, tokens, strict=True):
        logp = torch.log_softmax(row_logits.float(), dim=-1)
        out.append(logp.gather(-1, row_tokens.unsqueeze(-1)).squeeze(-1))
    return torch.stack(out)


def completion_logprobs(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    completion_len: int,
    temperature: float = 1.0,
    with_hidden: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logprobs of the last `completion_len` tokens (B, C), last hidden states over them or None).

    Logits are divided by the sampling temperature, so the log-probs are those of the distribution sampled from.
    """
    outputs = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids_for(attention_mask),
        logits_to_keep=completion_len + 1,
        output_hidden_states=with_hidden,
        use_cache=False,
    )
    logits = outputs.logits[:, :-1] / temperature
    logprobs = gather_logprobs(logits, input_ids[:, -completion_len:])
    hidden = outputs.hidden_states[-1][:, -completion_len - 1 : -1] if with_hidden else None
    return logprobs, hidden
