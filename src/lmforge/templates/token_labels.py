"""Rendered conversations -> token ids with character offsets, and labels from reply character spans.

A rendering is tokenised once, as a whole, exactly as `tokenizer.apply_chat_template(..., tokenize=True)` does
(no BOS/EOS added: the template writes them), so training sees the ids inference sees. Labels come from
character spans: a token is trained when any of its characters lies in a reply span. A token that also covers
characters outside the span (a BPE merge across the header/reply edge, such as Qwen's ``\\n\\n`` when a reply
starts with a newline) is trained, since it carries reply text; such tokens are counted as *straddling*.

Special-token text typed inside a message (a literal ``<|im_end|>``) stays plain text (QUALITY A16): those rows
are split at the protected occurrences and each part tokenised on its own, exactly as transformers'
`apply_chat_template(..., sanitize_control_tokens=True)` does; they are rare and counted.
"""

from __future__ import annotations

import bisect
import os
import re
import weakref
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

from lmforge.utils.errors import ConfigError

IGNORE_INDEX = -100
Offsets = list[tuple[int, int]]
_MAX_WORKERS = 2  # chunks encoded at once; more threads gained nothing on the benchmark machine
_CHUNK = 128  # texts per worker task: small enough to overlap with rendering, large enough to amortise a call


class CharIndex(Protocol):
    """Char <-> token lookups, as a `tokenizers.Encoding` answers them (in Rust, without building the offsets)."""

    def char_to_token(self, char_pos: int) -> int | None: ...

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None: ...


@dataclass
class Tokenized:
    ids: list[int]
    index: CharIndex


class _Offsets:
    """`CharIndex` over offsets assembled in Python (rows tokenised in pieces)."""

    def __init__(self, offsets: Offsets) -> None:
        self.offsets = offsets
        self.ends = [b for _, b in offsets]

    def char_to_token(self, char_pos: int) -> int | None:
        i = bisect.bisect_right(self.ends, char_pos)
        return i if i < len(self.offsets) and self.offsets[i][0] <= char_pos else None

    def token_to_chars(self, token_index: int) -> tuple[int, int] | None:
        return self.offsets[token_index]


@lru_cache(maxsize=32)
def _special_pattern(specials: tuple[str, ...]) -> re.Pattern[str] | None:
    if not specials:
        return None
    return re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True)))


_SPECIALS: weakref.WeakKeyDictionary[Any, tuple[int, dict[str, int]]] = weakref.WeakKeyDictionary()


def special_tokens_of(tokenizer: Any) -> dict[str, int]:
    """Special added tokens (content -> id): the strings that template text may use as control tokens.

    Cached per tokenizer (Llama-3 has 256 added tokens; this is asked for every conversation), and rebuilt when
    the tokenizer's vocabulary grows."""
    size = len(tokenizer)
    cached = _SPECIALS.get(tokenizer)
    if cached is None or cached[0] != size:
        specials = {tok.content: idx for idx, tok in tokenizer.added_tokens_decoder.items() if tok.special}
        cached = _SPECIALS[tokenizer] = (size, specials)
    return cached[1]


def has_control_text(tokenizer: Any, messages: list[dict]) -> bool:
    """Whether any message content contains special-token text (the data layer counts such rows, QUALITY A16)."""
    pattern = _special_pattern(tuple(special_tokens_of(tokenizer)))
    return pattern is not None and any(
        isinstance(m.get("content"), str) and pattern.search(m["content"]) for m in messages
    )


def _backend(tokenizer: Any) -> Any:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or not hasattr(backend, "encode_batch"):
        raise ConfigError(
            f"{type(tokenizer).__name__} is not a fast (Rust) tokenizer; lmforge needs one to align labels with "
            "the text (every model on the Hugging Face hub has a tokenizer.json or converts to one)"
        )
    return backend


def tokenize(tokenizer: Any, texts: Sequence[str], protected: Sequence[Sequence[tuple[int, int]]]) -> list[Tokenized]:
    """Each text's ids and char index; special-token text inside `protected[i]` spans stays text."""
    return tokenize_stream(tokenizer, zip(texts, protected, strict=True))


def tokenize_stream(tokenizer: Any, items: Iterable[tuple[str, Sequence[tuple[int, int]]]]) -> list[Tokenized]:
    """`tokenize` for (text, protected spans) pairs produced lazily: while the caller renders the next texts
    (Python), chunks of finished ones are tokenised on worker threads (Rust, which releases the GIL), so both
    CPU cores work. Rows with protected spans are tokenised afterwards on this thread, since they flip a flag
    of the shared tokenizer. Rust's own thread pool stays off when TOKENIZERS_PARALLELISM=false; these threads
    do not depend on it."""
    backend = _backend(tokenizer)
    out: list[Tokenized | None] = []
    protected_rows: list[tuple[int, str, Sequence[tuple[int, int]]]] = []
    pending: list[tuple[int, str]] = []
    futures: list[tuple[list[int], Future]] = []
    workers = min(_MAX_WORKERS, os.cpu_count() or 1)
    with ThreadPoolExecutor(workers) as pool:
        for text, protected in items:
            out.append(None)
            if protected:
                protected_rows.append((len(out) - 1, text, protected))
                continue
            pending.append((len(out) - 1, text))
            if len(pending) == _CHUNK and workers > 1:
                futures.append(_submit(pool, backend, pending))
                pending = []
        for positions, future in [*futures, _run_here(backend, pending)]:
            for i, encoding in zip(positions, future.result(), strict=True):
                out[i] = Tokenized(encoding.ids, encoding)
    pattern = _special_pattern(tuple(special_tokens_of(tokenizer)))
    for i, text, protected in protected_rows:
        out[i] = _tokenize_protected(backend, text, protected, pattern)
    return [t for t in out if t is not None]


def _submit(pool: ThreadPoolExecutor, backend: Any, rows: list[tuple[int, str]]) -> tuple[list[int], Future]:
    texts = [text for _, text in rows]
    return [i for i, _ in rows], pool.submit(backend.encode_batch, texts, add_special_tokens=False)


def _run_here(backend: Any, rows: list[tuple[int, str]]) -> tuple[list[int], Future]:
    done: Future = Future()
    done.set_result(backend.encode_batch([text for _, text in rows], add_special_tokens=False) if rows else [])
    return [i for i, _ in rows], done


def _tokenize_protected(
    backend: Any, text: str, spans: Sequence[tuple[int, int]], pattern: re.Pattern[str] | None
) -> Tokenized:
    """Split at special-token text inside `spans`; those parts are encoded as text, the rest as usual."""
    cuts = [
        (m.start(), m.end())
        for m in (pattern.finditer(text) if pattern else ())
        if any(lo <= m.start() and m.end() <= hi for lo, hi in spans)
    ]
    parts: list[tuple[int, int, bool]] = []
    pos = 0
    for lo, hi in cuts:
        if lo > pos:
            parts.append((pos, lo, False))
        parts.append((lo, hi, True))
        pos = hi
    if pos < len(text):
        parts.append((pos, len(text), False))
    ids: list[int] = []
    offsets: Offsets = []
    newline = backend.encode("\n", add_special_tokens=False).ids
    for lo, hi, literal in parts:
        piece_ids, piece_offsets = _encode_piece(backend, text[lo:hi], literal, newline if lo else None)
        ids += piece_ids
        offsets += [(a + lo, b + lo) for a, b in piece_offsets]
    return Tokenized(ids, _Offsets(offsets))


def _encode_piece(backend: Any, piece: str, literal: bool, newline: list[int] | None) -> tuple[list[int], Offsets]:
    """A piece from the middle of a rendering is encoded after a newline, which is then removed, so SentencePiece
    tokenizers do not add the prefix space they add at the start of a string (as transformers'
    `apply_chat_template(..., sanitize_control_tokens=True)` does)."""
    with _special_tokens_as_text(backend, literal):
        if newline:
            encoding = backend.encode("\n" + piece, add_special_tokens=False)
            if encoding.ids[: len(newline)] == newline:
                return encoding.ids[len(newline) :], [(a - 1, b - 1) for a, b in encoding.offsets[len(newline) :]]
        encoding = backend.encode(piece, add_special_tokens=False)
    return encoding.ids, encoding.offsets


@contextmanager
def _special_tokens_as_text(backend: Any, on: bool = True) -> Iterator[None]:
    """The backend flag that transformers flips for `split_special_tokens`, restored so no later encode is affected."""
    previous = backend.encode_special_tokens
    backend.encode_special_tokens = on
    try:
        yield
    finally:
        backend.encode_special_tokens = previous


def token_ranges(
    tokenized: Tokenized, spans: Sequence[tuple[int, int]], special_ids: Collection[int]
) -> tuple[list[tuple[int, int]], int]:
    """Token index ranges [i, j) of the tokens overlapping each character span, and how many straddle an edge.

    A special token that starts before the span is template text, never trained, even when it swallowed the
    reply's first whitespace (added tokens with `rstrip`, as Phi-3's `<|assistant|>`); a special token that ends
    after the span is the reply's stop token with its swallowed whitespace, trained and not counted.
    """
    ids, index, n = tokenized.ids, tokenized.index, len(tokenized.ids)
    ranges: list[tuple[int, int]] = []
    straddling = 0
    for lo, hi in spans:
        first = next((t for t in map(index.char_to_token, range(lo, hi)) if t is not None), None)
        last = next((t for t in map(index.char_to_token, range(hi - 1, lo - 1, -1)) if t is not None), None)
        if first is None or last is None:
            ranges.append((n, n))
            continue
        while last + 1 < n and _chars(index, last + 1)[0] < hi:  # tokens sharing the last character (bytes)
            last += 1
        i, j = first, last + 1
        while i < j and ids[i] in special_ids and _chars(index, i)[0] < lo:
            i += 1
        if i < j:
            edges = {i} if _chars(index, i)[0] < lo else set()
            if _chars(index, j - 1)[1] > hi and ids[j - 1] not in special_ids:
                edges.add(j - 1)
            straddling += len(edges)
        ranges.append((i, j))
    return ranges, straddling


def _chars(index: CharIndex, token: int) -> tuple[int, int]:
    return index.token_to_chars(token) or (0, 0)
