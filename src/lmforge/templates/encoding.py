"""Text pieces -> token ids, keeping special-token text typed by users as plain text (QUALITY A16).

A rendered conversation is a list of pieces ``(text, is_user_text)``. Template text is split at the tokenizer's
special tokens, which map straight to their ids; everything between two template special tokens (template text
and user text alike) is one *run*, tokenized with ``split_special_tokens=True`` so that a literal ``<|im_end|>``
typed by a user stays text. Tokenizers split at added tokens before pre-tokenizing, so encoding run by run gives
the same ids as encoding the whole rendering at once.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from lmforge.templates.base import EncodedTurn

Piece = tuple[str, bool]


@lru_cache(maxsize=32)
def _special_pattern(specials: tuple[str, ...]) -> re.Pattern[str] | None:
    if not specials:
        return None
    return re.compile("(" + "|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)) + ")")


def special_tokens_of(tokenizer: Any) -> dict[str, int]:
    """Special added tokens (content -> id): the strings that template text may use as control tokens."""
    return {tok.content: idx for idx, tok in tokenizer.added_tokens_decoder.items() if tok.special}


def _items(pieces: list[Piece], specials: dict[str, int]) -> list[int | str]:
    """Split pieces into special ids and text runs; only template text is searched for special tokens."""
    pattern = _special_pattern(tuple(specials))
    items: list[int | str] = []
    run = ""
    for text, is_user_text in pieces:
        parts = [text] if is_user_text or pattern is None else pattern.split(text)
        for k, part in enumerate(parts):
            if k % 2 == 1:  # a captured special token
                if run:
                    items.append(run)
                    run = ""
                items.append(specials[part])
            else:
                run += part
    if run:
        items.append(run)
    return items


def encode_segments(tokenizer: Any, segments: list[list[Piece]]) -> list[list[int]]:
    """Encode each segment separately (segment boundaries are where prompt and response meet), in one batch call."""
    specials = special_tokens_of(tokenizer)
    seg_items = [_items(pieces, specials) for pieces in segments]
    texts = [item for items in seg_items for item in items if isinstance(item, str)]
    encoded = iter(encode_texts(tokenizer, texts) if texts else [])
    out = []
    for items in seg_items:
        ids: list[int] = []
        for item in items:
            ids.extend(next(encoded) if isinstance(item, str) else [item])
        out.append(ids)
    return out


def encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Ids of plain-text runs with special-token text kept as text, like `split_special_tokens=True`.

    Fast tokenizers go straight to the Rust backend's batch encoder (no offsets, no BatchEncoding): the same ids,
    without the Python wrapping that costs ~30% of a chat dataset's encoding time (bench/RESULTS.md). The
    backend flag that transformers flips for `split_special_tokens` is restored, so no later encode is affected.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch_fast"):
        return tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]
    finally:
        backend.encode_special_tokens = previous


def text_of(pieces: list[Piece]) -> str:
    return "".join(text for text, _ in pieces)


def turns_from_segments(tokenizer: Any, segments: list[tuple[list[Piece], bool]]) -> list[EncodedTurn]:
    """Group encoded (pieces, is_response) segments into (prompt, response) turns."""
    ids = encode_segments(tokenizer, [pieces for pieces, _ in segments])
    turns, prompt = [], []
    for (_, is_response), seg_ids in zip(segments, ids, strict=True):
        if is_response:
            turns.append(EncodedTurn(prompt, seg_ids))
            prompt = []
        else:
            prompt = prompt + seg_ids
    return turns


def ids_from_segments(tokenizer: Any, segments: list[tuple[list[Piece], bool]]) -> list[int]:
    return [i for ids in encode_segments(tokenizer, [pieces for pieces, _ in segments]) for i in ids]


def has_control_text(tokenizer: Any, messages: list[dict]) -> bool:
    """Whether any message content contains special-token text (the data layer counts such rows, QUALITY A16)."""
    pattern = _special_pattern(tuple(special_tokens_of(tokenizer)))
    return pattern is not None and any(
        isinstance(m.get("content"), str) and pattern.search(m["content"]) for m in messages
    )
