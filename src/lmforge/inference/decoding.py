"""One batched decode loop step at a time: left-padded prefill, cached single-token steps, per-row sampling.

The batching worker (`batching.py`: the server's thread, and every in-process caller) drives these functions itself
(instead of `model.generate`) so that every row keeps its own sampling settings, seed, stop ids and token budget,
rows can leave the batch as soon as they finish, and each token can be handed to its request the moment it exists.
Prompts are padded on the left and every row gets position ids counted from its own first real token, which is what
makes a batched greedy row equal the same prompt decoded alone (QUALITY C16, E2).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from lmforge.inference import prefill_plan
from lmforge.inference.sampling import GenerationOptions


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


def pad_left(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) with every prompt ending at the last column, as decoder-only generation needs."""
    width = max(len(p) for p in prompts)
    ids = [[pad_id] * (width - len(p)) + p for p in prompts]
    mask = [[0] * (width - len(p)) + [1] * len(p) for p in prompts]
    return torch.tensor(ids), torch.tensor(mask)


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Position ids that start at 0 on each row's first real token (padding columns get 0; they are masked)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def make_generator(seed: int | None) -> torch.Generator | None:
    """A private RNG for a seeded row, so its samples do not depend on what else is in the batch."""
    return None if seed is None else torch.Generator().manual_seed(seed % 2**64)  # any int64 (+ choice index)


def decoder_model(model: Any) -> Any:
    """The model the loop calls: a PEFT prompt-learning model's base model, whose virtual tokens `prefill` adds
    itself (PEFT's own forward would prepend them again at every step and ignores position ids)."""
    return model.get_base_model() if _prompt_learning(model) else model


def _prompt_learning(model: Any) -> Any:
    """The active PEFT prompt-learning config (prefix, prompt or p-tuning), or None."""
    config = getattr(model, "active_peft_config", None)
    return config if getattr(config, "is_prompt_learning", False) else None


def _virtual_tokens(model: Any, input_ids: torch.Tensor) -> tuple[int, Any, torch.Tensor | None]:
    """(number of virtual tokens, starting cache, input embeddings) for a batch: PEFT prefix tuning starts from its
    trained key/value prefix, prompt and p-tuning put their trained embeddings before the prompt's; plain models
    start from an empty cache."""
    from lmforge.inference.kv_cache import RoomyCache  # imports transformers: not at module import

    config = _prompt_learning(model)
    if config is None:
        return 0, RoomyCache(), None
    rows, virtual = input_ids.shape[0], config.num_virtual_tokens
    if config.peft_type == "PREFIX_TUNING":
        prefix = model.get_prompt(batch_size=rows)
        return virtual, RoomyCache.from_tensors([(layer.keys, layer.values) for layer in prefix.layers]), None
    base = model.get_base_model()
    embeds = base.get_input_embeddings()(input_ids.to(base.device))
    prompt = model.get_prompt(batch_size=rows).to(embeds.dtype)
    return virtual, RoomyCache(), torch.cat([prompt, embeds], dim=1)


def _forward(
    model: Any,
    input_ids: torch.Tensor | None,
    mask: torch.Tensor,
    positions: torch.Tensor,
    cache: Any,
    logits_to_keep: int = 1,
    inputs_embeds: torch.Tensor | None = None,
) -> Any:
    model = decoder_model(model)
    device = model.device
    return model(
        input_ids=None if input_ids is None else input_ids.to(device),
        inputs_embeds=inputs_embeds,
        attention_mask=mask.to(device),
        position_ids=positions.to(device),
        past_key_values=cache,
        use_cache=True,
        logits_to_keep=logits_to_keep,
    )


def prefill(
    model: Any,
    prompts: list[list[int]],
    pad_id: int,
    seeds: list[int | None],
    prompt_logprobs: list[int | None],
) -> tuple[BatchState, list[list[TokenLogprob] | None]]:
    """Run the prompts through the model once; the state holds the logits for each first token.

    Rows with `prompt_logprobs` (k: each prompt token's log-probability with the top k; None: no scoring) get every
    prompt token scored from the same forward pass, so scoring costs no extra pass. The rows are prefilled in the
    parts `prefill_plan` chooses (a shared prefix computed once, similar lengths together), then joined into one
    batch in their given order.
    """
    if _prompt_learning(model):  # virtual tokens come first: nothing to share, one batch
        return _prefill_part(model, prompts, pad_id, seeds, prompt_logprobs)
    parts = prefill_plan.plan(prompts)
    if len(parts) == 1 and not parts[0].shared:
        return _prefill_part(model, prompts, pad_id, seeds, prompt_logprobs)
    state: BatchState | None = None
    scores: list[list[TokenLogprob] | None] = [None] * len(prompts)
    for part in parts:
        done, part_scores = _prefill_part(
            model,
            [prompts[r] for r in part.rows],
            pad_id,
            [seeds[r] for r in part.rows],
            [prompt_logprobs[r] for r in part.rows],
            part.shared,
        )
        state = done if state is None else merge(state, done)
        for row, score in zip(part.rows, part_scores, strict=True):
            scores[row] = score
    assert state is not None
    order = [row for part in parts for row in part.rows]  # the merged batch's rows, back in the given order
    keep_rows(state, sorted(range(len(order)), key=order.__getitem__))
    return state, scores


def _prefill_part(
    model: Any,
    prompts: list[list[int]],
    pad_id: int,
    seeds: list[int | None],
    prompt_logprobs: list[int | None],
    shared: int = 0,
) -> tuple[BatchState, list[list[TokenLogprob] | None]]:
    """One left-padded prefill; the first `shared` tokens (the same in every prompt) run once, for one row, and the
    rows continue from copies of their keys and values (each row then holds padding mid-row, masked like left
    padding). For scoring, the logits of the last `width` columns are kept, `width` being the longest scored rest of
    a prompt, and a shared prefix's logits once for all its rows."""
    input_ids, mask = pad_left([p[shared:] for p in prompts], pad_id)
    scored = [len(p) - shared if top is not None else 0 for p, top in zip(prompts, prompt_logprobs, strict=True)]
    width = max(1, *scored)
    past, cache, embeds = _virtual_tokens(model, input_ids)  # columns cached before the prompt's own
    prefix_logits = None
    if shared:
        kept = shared if any(scored) else 1
        past, (cache, prefix_logits) = shared, _prefix_cache(model, prompts[0][:shared], len(prompts), kept)
    mask = torch.cat([torch.ones(len(prompts), past, dtype=mask.dtype), mask], dim=1)
    positions = positions_from_mask(mask)
    if embeds is None:
        out = _forward(model, input_ids, mask, positions[:, past:], cache, logits_to_keep=width)
    else:
        out = _forward(model, None, mask, positions, cache, logits_to_keep=width, inputs_embeds=embeds)

    def prompt_logits(row: int, n: int) -> torch.Tensor:  # a row's positions, built one row at a time
        own = out.logits[row, width - n :]
        return own if prefix_logits is None else torch.cat([prefix_logits, own])

    scores = [
        score_prompt(prompt_logits(row, n), prompt, top) if n else None
        for row, (n, prompt, top) in enumerate(zip(scored, prompts, prompt_logprobs, strict=True))
    ]
    state = BatchState(
        cache=out.past_key_values,
        attention_mask=mask,
        next_positions=positions[:, -1] + 1,
        logits=out.logits[:, -1].float().cpu(),
        generators=[make_generator(seed) for seed in seeds],
    )
    return state, scores


def _prefix_cache(model: Any, prefix: list[int], rows: int, kept: int) -> tuple[Any, torch.Tensor]:
    """(a cache holding `prefix`'s keys and values for each of `rows` rows, the logits of its last `kept` positions):
    the prefix run through the model once."""
    from lmforge.inference.kv_cache import RoomyCache

    ids = torch.tensor([prefix])
    ones = torch.ones_like(ids)
    out = _forward(model, ids, ones, positions_from_mask(ones), RoomyCache(), logits_to_keep=kept)
    copies = [
        (layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1))
        for layer in out.past_key_values.layers
    ]
    return RoomyCache.from_tensors(copies), out.logits[0]


def score_prompt(logits: torch.Tensor, prompt: list[int], top: int | None) -> list[TokenLogprob]:
    """Each prompt token's log-probability given the tokens before it; `logits` are the prompt's own positions.

    The logits at position t predict token t + 1, so token 0 has no score (None, as the OpenAI API reports it).
    """
    first = TokenLogprob(prompt[0], None)
    if len(prompt) == 1:
        return [first]
    targets = torch.tensor(prompt[1:], device=logits.device)
    return [first, *token_logprobs(logits[:-1], targets, [top or 0] * (len(prompt) - 1))]


#: on CPU, positions whose log-softmax is taken at once in `token_logprobs`: ~2 MiB of float32 logits, so the
#: log-probabilities are still in cache when the chosen and top entries are read from them, and a long prompt's
#: scoring never holds a second copy of all its logits (1088 positions x 8192 vocab: 2.1x faster than one pass)
_CPU_CHUNK_ELEMENTS = 2**19


def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor, tops: list[int]) -> list[TokenLogprob]:
    """The log-probability of `tokens[i]` under `logits[i]` ([n, vocab]) and the `tops[i]` most likely tokens."""
    n, vocab = logits.shape
    if n == 0:
        return []
    k = min(max(tops, default=0), vocab)
    step = max(1, _CPU_CHUNK_ELEMENTS // vocab) if logits.device.type == "cpu" else n
    tokens = tokens.to(logits.device)
    parts = [_logprob_table(logits[i : i + step], tokens[i : i + step], k) for i in range(0, n, step)]
    chosen, values, ids = (torch.cat(part).tolist() for part in zip(*parts, strict=True))
    return [
        TokenLogprob(token, lp, tuple(zip(ids[i][:top], values[i][:top], strict=True)))
        for i, (token, lp, top) in enumerate(zip(tokens.tolist(), chosen, tops, strict=True))
    ]


def _logprob_table(logits: torch.Tensor, tokens: torch.Tensor, k: int) -> tuple[torch.Tensor, ...]:
    """(chosen log-probabilities [n], top-k log-probabilities [n, k], their ids [n, k]) from one log-softmax."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    chosen = logp.gather(-1, tokens[:, None])[:, 0]
    if k == 1:  # max is several times cheaper than topk(1), and on ties gives the first id, as greedy argmax does
        return chosen, *logp.max(dim=-1, keepdim=True)
    return chosen, *(logp.topk(k, dim=-1) if k else (logp[:, :0], logp[:, :0].long()))


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
        layer.drop_leading(first)
    state.attention_mask = state.attention_mask[:, first:]


def _cache_device(cache: Any) -> torch.device:
    for layer in getattr(cache, "layers", []):
        keys = getattr(layer, "keys", None)
        if isinstance(keys, torch.Tensor):
            return keys.device
    return torch.device("cpu")


def sample(
    logits: torch.Tensor,
    options: list[GenerationOptions],
    generators: list[torch.Generator | None],
    histories: list[list[int]] | None = None,
) -> torch.Tensor:
    """The next token of each row: argmax for temperature 0, else top-k / top-p sampling from its own RNG (the global
    one for unseeded rows). Rows with a repetition penalty need `histories` (their prompt + reply ids so far)."""
    tokens = logits.argmax(dim=-1)
    for row, o in enumerate(options):
        if o.greedy and o.repetition_penalty == 1.0:
            continue
        scores = logits[row]
        if o.repetition_penalty != 1.0:
            scores = penalize_repeats(scores, (histories or [])[row], o.repetition_penalty)
        tokens[row] = scores.argmax() if o.greedy else _sample_row(scores, o, generators[row])
    return tokens


def penalize_repeats(scores: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """CTRL's repetition penalty as transformers applies it: seen tokens' positive logits divided by `penalty`,
    negative ones multiplied (a copy; the raw logits still give the reported log-probabilities)."""
    if not seen:
        return scores
    index = torch.tensor(seen, dtype=torch.long)
    picked = scores[index]
    return scores.scatter(0, index, torch.where(picked < 0, picked * penalty, picked / penalty))


def _sample_row(logits: torch.Tensor, o: GenerationOptions, generator: torch.Generator | None) -> torch.Tensor:
    scores = logits / o.temperature
    if 0 < o.top_k < scores.numel():
        kth = torch.topk(scores, o.top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    if o.top_p < 1.0:
        sorted_probs, order = probs.sort(descending=True)
        outside = sorted_probs.cumsum(-1) - sorted_probs >= o.top_p  # keeps at least the most likely token
        probs = probs.scatter(0, order, sorted_probs.masked_fill(outside, 0.0))
    return torch.multinomial(probs, 1, generator=generator)[0]


def can_merge(state: BatchState) -> bool:
    """New rows can join a running batch only when every cache layer is a plain growing key/value layer (ours)."""
    from lmforge.inference.kv_cache import is_roomy

    return is_roomy(state.cache)


def merge(old: BatchState, new: BatchState) -> BatchState:
    """One batch holding `old`'s rows then `new`'s: the shorter cache is padded on the left (masked columns)."""
    from lmforge.inference.kv_cache import RoomyCache

    width = max(old.attention_mask.shape[1], new.attention_mask.shape[1])
    return BatchState(
        cache=RoomyCache.merged(old.cache, new.cache, width),
        attention_mask=torch.cat([_pad_mask(old.attention_mask, width), _pad_mask(new.attention_mask, width)]),
        next_positions=torch.cat([old.next_positions, new.next_positions]),
        logits=torch.cat([old.logits, new.logits]),
        generators=old.generators + new.generators,
    )


def _pad_mask(mask: torch.Tensor, width: int) -> torch.Tensor:
    return torch.cat([mask.new_zeros(mask.shape[0], width - mask.shape[1]), mask], dim=1)
