"""Text pieces -> token ids, keeping special-token text typed by users as plain text (QUALITY A16).

A rendered conversation is a list of pieces ``(text, is_user_text)``. Template text is split at the tokenizer's
special tokens, which map straight to their ids; everything between two template special tokens (template text
and user text alike) is one *run*, tokenized with ``split_special_tokens=True`` so that a literal ``<|im_end|>``
typed by a user stays text. Tokenizers split at added tokens before pre-tokenizing, so encoding run by run gives
the same ids as encoding the whole rendering at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache, partial
from typing import Any

from lmforge.templates.base import EncodedTurn

Piece = tuple[str, bool]
_MAX_WORKERS = 2  # chunks encoded at once; more threads gained nothing on the benchmark machine
_MIN_PARALLEL_TEXTS = 256  # below this a thread pool costs more than it saves


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
    return encode_segments_many(tokenizer, [segments])[0]


def encode_segments_many(tokenizer: Any, conversations: list[list[list[Piece]]]) -> list[list[list[int]]]:
    """`encode_segments` for many conversations: every text run of every conversation in one batch encode."""
    specials = special_tokens_of(tokenizer)
    conv_items = [[_items(pieces, specials) for pieces in segments] for segments in conversations]
    texts = [item for seg_items in conv_items for items in seg_items for item in items if isinstance(item, str)]
    encoded = iter(encode_texts_parallel(tokenizer, texts))
    return [[_assemble(items, encoded) for items in seg_items] for seg_items in conv_items]


def _assemble(items: list[int | str], encoded: Iterator[list[int]]) -> list[int]:
    """A segment's ids: special ids as they are, each text run replaced by its next encoding."""
    ids: list[int] = []
    for item in items:
        ids.extend(next(encoded) if isinstance(item, str) else [item])
    return ids


def encode_texts_parallel(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """`encode_texts` in chunks on Python threads: the Rust encoder releases the GIL, so chunks run in parallel.

    Rust's own thread pool stays off when TOKENIZERS_PARALLELISM=false; these threads do not depend on it.
    """
    backend = _fast_backend(tokenizer)
    workers = min(_MAX_WORKERS, os.cpu_count() or 1)
    if backend is None or workers < 2 or len(texts) < _MIN_PARALLEL_TEXTS:
        return encode_texts(tokenizer, texts) if texts else []
    step = -(-len(texts) // workers)
    chunks = [texts[k : k + step] for k in range(0, len(texts), step)]
    with _special_tokens_as_text(backend), ThreadPoolExecutor(workers) as pool:
        return [ids for chunk_ids in pool.map(partial(_backend_ids, backend), chunks) for ids in chunk_ids]


def encode_texts(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """Ids of plain-text runs with special-token text kept as text, like `split_special_tokens=True`.

    Fast tokenizers go straight to the Rust backend's batch encoder (no offsets, no BatchEncoding): the same ids,
    without the Python wrapping that costs ~30% of a chat dataset's encoding time (bench/RESULTS.md).
    """
    backend = _fast_backend(tokenizer)
    if backend is None:
        return tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    with _special_tokens_as_text(backend):
        return _backend_ids(backend, texts)


def _fast_backend(tokenizer: Any) -> Any | None:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return backend if backend is not None and hasattr(backend, "encode_batch_fast") else None


def _backend_ids(backend: Any, texts: list[str]) -> list[list[int]]:
    return [encoding.ids for encoding in backend.encode_batch_fast(texts, add_special_tokens=False)]


@contextmanager
def _special_tokens_as_text(backend: Any) -> Iterator[None]:
    """The backend flag that transformers flips for `split_special_tokens`, restored so no later encode is affected."""
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = True
    try:
        yield
    finally:
        backend.encode_special_tokens = previous


def text_of(pieces: list[Piece]) -> str:
    return "".join(text for text, _ in pieces)


def turns_from_segments(tokenizer: Any, segments: list[tuple[list[Piece], bool]]) -> list[EncodedTurn]:
    """Group encoded (pieces, is_response) segments into (prompt, response) turns."""
    return turns_from_segments_many(tokenizer, [segments])[0]


def turns_from_segments_many(
    tokenizer: Any, conversations: list[list[tuple[list[Piece], bool]]]
) -> list[list[EncodedTurn]]:
    """`turns_from_segments` for many conversations, their text encoded in one (threaded) batch."""
    ids = encode_segments_many(tokenizer, [[pieces for pieces, _ in segments] for segments in conversations])
    return [_group_turns(segments, seg_ids) for segments, seg_ids in zip(conversations, ids, strict=True)]


def _group_turns(segments: list[tuple[list[Piece], bool]], ids: list[list[int]]) -> list[EncodedTurn]:
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
