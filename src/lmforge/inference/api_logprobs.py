"""Token log-probabilities in OpenAI's two wire shapes: legacy completions and chat.

Token strings are each id decoded on its own (special tokens kept, as vLLM shows them). Completions' `text_offset`
is the running sum of those strings' lengths from the start of the choice's `text` (the echoed prompt included),
continued across stream chunks; a prompt's first token has `null` log-probability and alternatives. Completions'
`top_logprobs` hold the top alternatives plus the chosen token (so `logprobs: 0` still names it; being a dict keyed by
token string, ids that decode to the same string keep the likeliest), chat's exactly `top_logprobs` alternatives,
as the two APIs define them.
"""

from __future__ import annotations

import weakref
from typing import Any

from lmforge.inference.decoding import TokenLogprob

#: each tokenizer's id -> text of the ids decoded so far: an id's text never changes, and decoding every token of
#: every scored prompt again was a tenth of the server's event-loop time under scoring load
_TOKEN_TEXT: weakref.WeakKeyDictionary[Any, dict[int, str]] = weakref.WeakKeyDictionary()


def _strings(tokenizer: Any, entries: list[TokenLogprob]) -> dict[int, str]:
    known = _TOKEN_TEXT.setdefault(tokenizer, {})
    missing = sorted(({e.token for e in entries} | {i for e in entries for i, _ in e.top}) - known.keys())
    if missing:
        known.update(
            zip(missing, tokenizer.batch_decode([[i] for i in missing], skip_special_tokens=False), strict=True)
        )
    return known


class CompletionLogprobs:
    """A choice's `logprobs` object of /v1/completions, built chunk by chunk (offsets carry over)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.offset = 0

    def format(self, entries: list[TokenLogprob]) -> dict[str, Any]:
        text = _strings(self.tokenizer, entries)
        out: dict[str, Any] = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for entry in entries:
            token = text[entry.token]
            out["tokens"].append(token)
            out["token_logprobs"].append(entry.logprob)
            top: dict[str, float] | None = None
            if entry.logprob is not None:
                top = {}
                for i, lp in [*entry.top, (entry.token, entry.logprob)]:
                    top.setdefault(text[i], lp)  # ids that decode alike (byte pieces): the likeliest one stands
            out["top_logprobs"].append(top)
            out["text_offset"].append(self.offset)
            self.offset += len(token)
        return out


def chat_logprobs(tokenizer: Any, entries: list[TokenLogprob]) -> dict[str, Any]:
    """A choice's (or a chunk's) `logprobs` object of /v1/chat/completions."""
    text = _strings(tokenizer, entries)

    def item(token: int, logprob: float) -> dict[str, Any]:
        return {"token": text[token], "logprob": logprob, "bytes": list(text[token].encode("utf-8"))}

    content = [
        {**item(e.token, e.logprob), "top_logprobs": [item(i, lp) for i, lp in e.top]}
        for e in entries
        if e.logprob is not None
    ]
    return {"content": content, "refusal": None}
