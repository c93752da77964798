"""One batched decode loop step at a time: left-padded prefill, cached single-token steps, per-row sampling.

The server's batching worker drives these functions itself (instead of `model.generate`) so that every row keeps its
own sampling settings, seed, stop ids and token budget, rows can leave the batch as soon as they finish, and each
token can be handed to its request the moment it exists. Prompts are padded on the left and every row gets position
ids counted from its own first real token, which is what makes a batched greedy row equal the same prompt decoded
alone (QUALITY C16, E2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.inference.engine import pad_left

#: temperatures below this decode greedily (dividing logits by ~1e-38 overflows to inf and NaN probabilities)
MIN_TEMPERATURE = 1e-5


@dataclass(frozen=True)
class SamplingParams:
    """Per-row settings; temperature 0 is greedy, `seed` makes sampling reproducible."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None
    logprobs: int | None = None  # None: no log-probabilities; k: each generated token's, with the top k
    prompt_logprobs: int | None = None  # None: do not score the prompt; k: each prompt token's, with the top k

    def __post_init__(self) -> None:
        if self.temperature < MIN_TEMPERATURE:
            object.__setattr__(self, "temperature", 0.0)


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability under the model's own distribution (raw logits: before temperature, top-k and
    top-p, as OpenAI and vLLM report them) and the `top` most likely (id, log-probability) at that position.
    `logprob` is None for a prompt's first token, which nothing predicts."""

    token: int
    logprob: float | None
    top: tuple[tuple[int, float], ...] = ()


@dataclass
class BatchState:
    """The live batch between steps: the cache, the mask over all cached columns and each row's next position."""

    cache: Any
    attention_mask: torch.Tensor
    next_positions: torch.Tensor
    logits: torch.Tensor  # [rows, vocab] float32 logits for the next token of each row
    generators: list[torch.Generator | None] = field(default_factory=list)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (padding columns get 0; they are masked)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def make_generator(seed: int | None) -> torch.Generator | None:
    """A private RNG for a seeded row, so its samples do not depend on what else is in the batch."""
    return None if seed is None else torch.Generator().manual_seed(seed % 2**64)  # any int64 (+ choice index)


def _forward(
    model: Any, input_ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, cache: Any, logits_to_keep=1
) -> Any:
    device = model.device
    return model(
        input_ids=input_ids.to(device),
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=logits_to_keep,
    )


def prefill(
    model: Any, prompts: list[list[int]], pad_id: int, params: list[SamplingParams]
) -> tuple[BatchState, list[list[TokenLogprob] | None]]:
    """Run the left-padded prompts through the model once; the state holds the logits for each first token.

    Rows with `prompt_logprobs` also get every prompt token scored from the same forward pass (the logits of the
    last `width` columns are kept, `width` being the longest scored prompt), so scoring costs no extra pass.
    """
    from transformers import DynamicCache

    input_ids, mask = pad_left(prompts, pad_id)
    positions = positions_from_mask(mask)
    scored = [len(p) if sp.prompt_logprobs is not None else 0 for p, sp in zip(prompts, params, strict=True)]
    width = max(1, *scored)
    out = _forward(model, input_ids, mask, positions, DynamicCache(), logits_to_keep=width)
    scores = [
        score_prompt(out.logits[row, width - n :], prompt, sp.prompt_logprobs) if n else None
        for row, (n, prompt, sp) in enumerate(zip(scored, prompts, params, strict=True))
    ]
    state = BatchState(
        cache=out.past_key_values,
        attention_mask=mask,
        next_positions=positions[:, -1] + 1,
        logits=out.logits[:, -1].float().cpu(),
        generators=[make_generator(p.seed) for p in params],
    )
    return state, scores


def score_prompt(logits: torch.Tensor, prompt: list[int], top: int | None) -> list[TokenLogprob]:
    """Each prompt token's log-probability given the tokens before it; `logits` are the prompt's own positions.

    The logits at position t predict token t + 1, so token 0 has no score (None, as the OpenAI API reports it).
    """
    first = TokenLogprob(prompt[0], None)
    if len(prompt) == 1:
        return [first]
    targets = torch.tensor(prompt[1:], device=logits.device)
    return [first, *token_logprobs(logits[:-1], targets, [top or 0] * (len(prompt) - 1))]


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, tops: list[int]) -> list[TokenLogprob]:
    """The log-probability of `tokens[i]` under `logits[i]` ([n, vocab]) and the `tops[i]` most likely tokens."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, tokens.to(logp.device)[:, None])[:, 0].tolist()
    k = min(max(tops, default=0), logp.shape[-1])
    values, ids = logp.topk(k, dim=-1) if k else (logp[:, :0], logp[:, :0].long())
    values, ids = values.tolist(), ids.tolist()
    return [
        TokenLogprob(token, lp, tuple(zip(ids[i][:top], values[i][:top], strict=True)))
        for i, (token, lp, top) in enumerate(zip(tokens.tolist(), chosen, tops, strict=True))
    ]


def step(model: Any, state: BatchState, tokens: torch.Tensor) -> None:
    """Feed one new token per row (`tokens`: [rows]) and replace `state.logits` with the following ones."""
    mask = torch.cat([state.attention_mask, torch.ones(len(tokens), 1, dtype=state.attention_mask.dtype)], dim=1)
    out = _forward(model, tokens[:, None], mask, state.next_positions[:, None], state.cache)
    state.cache = out.past_key_values
    state.attention_mask = mask
    state.next_positions = state.next_positions + 1
    state.logits = out.logits[:, -1].float().cpu()


def keep_rows(state: BatchState, keep: list[int]) -> None:
    """Drop finished rows from the batch so they cost no more compute."""
    index = torch.tensor(keep, dtype=torch.long)
    state.cache.batch_select_indices(index.to(_cache_device(state.cache)))
    state.attention_mask = state.attention_mask[index]
    state.next_positions = state.next_positions[index]
    state.logits = state.logits[index]
    state.generators = [state.generators[i] for i in keep]
    _trim_padding(state)


def _trim_padding(state: BatchState) -> None:
    """Drop leading columns that are padding in every remaining row, so rows that keep joining a batch that never
    empties do not make every step attend over (and copy) an ever wider cache."""
    first = int(state.attention_mask.any(dim=0).int().argmax())
    if first == 0 or not can_merge(state):
        return
    for layer in state.cache.layers:
        layer.keys, layer.values = layer.keys[:, :, first:], layer.values[:, :, first:]
    state.attention_mask = state.attention_mask[:, first:]


def _cache_device(cache: Any) -> torch.device:
    for layer in getattr(cache, "layers", []):
        keys = getattr(layer, "keys", None)
        if isinstance(keys, torch.Tensor):
            return keys.device
    return torch.device("cpu")


def sample(
    logits: torch.Tensor, params: list[SamplingParams], generators: list[torch.Generator | None]
) -> torch.Tensor:
    """The next token of each row: argmax for temperature 0, else top-k / top-p sampling from its own RNG."""
    tokens = logits.argmax(dim=-1)
    for row, p in enumerate(params):
        if p.temperature > 0:
            tokens[row] = _sample_row(logits[row], p, generators[row])
    return tokens


def _sample_row(logits: torch.Tensor, p: SamplingParams, generator: torch.Generator | None) -> torch.Tensor:
    scores = logits / p.temperature
    if 0 < p.top_k < scores.numel():
        kth = torch.topk(scores, p.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if p.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= p.top_p  # keeps at least the most likely token
        probs = probs.scatter(0, order, sorted_probs.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1, generator=generator)[0]


def can_merge(state: BatchState) -> bool:
    """New rows can join a running batch only when every cache layer is a plain growing key/value layer."""
    from transformers.cache_utils import DynamicLayer

    layers = getattr(state.cache, "layers", None)
    return bool(layers) and all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers)


def merge(old: BatchState, new: BatchState) -> BatchState:
    """One batch holding `old`'s rows then `new`'s: the shorter cache is padded on the left (masked columns)."""
    from transformers import DynamicCache

    width = max(old.attention_mask.shape[1], new.attention_mask.shape[1])
    layers = [
        (
            torch.cat([_pad_kv(a.keys, width), _pad_kv(b.keys, width)]),
            torch.cat([_pad_kv(a.values, width), _pad_kv(b.values, width)]),
        )
        for a, b in zip(old.cache.layers, new.cache.layers, strict=True)
    ]
    return BatchState(
        cache=DynamicCache(ddp_cache_data=layers),
        attention_mask=torch.cat([_pad_mask(old.attention_mask, width), _pad_mask(new.attention_mask, width)]),
        next_positions=torch.cat([old.next_positions, new.next_positions]),
        logits=torch.cat([old.logits, new.logits]),
        generators=old.generators + new.generators,
    )


def _pad_kv(tensor: torch.Tensor, width: int) -> torch.Tensor:
    missing = width - tensor.shape[-2]
    if missing == 0:
        return tensor
    shape = (*tensor.shape[:-2], missing, tensor.shape[-1])
    return torch.cat([tensor.new_zeros(shape), tensor], dim=-2)


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([mask.new_zeros(mask.shape[0], width - mask.shape[1]), mask], dim=1)
