"""Token ids to text pieces while a reply is generated, with the request's `stop` strings applied.

Decoding a growing window of ids (rather than each id alone) keeps multi-token characters and tokenizer-specific
spacing right; text that could still be the start of a stop string is held back until it is certain it is not,
so a streamed reply never shows text a non-streamed one would have cut.
"""

from __future__ import annotations

from typing import Any


class TextAssembler:
    """Feeds on token ids, returns the text that can be shown now; `stopped` once a stop string appeared."""

    def __init__(self, tokenizer: Any, stop: list[str]) -> None:
        self.tokenizer = tokenizer
        self.stop = [s for s in stop if s]
        self.hold = max((len(s) for s in self.stop), default=1) - 1
        self.ids: list[int] = []
        self.text = ""  # all decoded text so far (cut at a stop string once one is found)
        self.sent = 0  # characters of `text` already returned
        self.stopped = False
        self._prefix_offset = 0
        self._read_offset = 0

    def add(self, token: int) -> str:
        """The newly showable text after `token` (may be empty)."""
        if self.stopped:
            return ""
        self.ids.append(token)
        return self._advance()

    def _advance(self) -> str:
        prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
        window = self._decode(self.ids[self._prefix_offset :])
        if len(window) <= len(prefix) or window.endswith("\ufffd"):  # an incomplete character: wait for more ids
            return ""
        self.text += window[len(prefix) :]
        self._prefix_offset, self._read_offset = self._read_offset, len(self.ids)
        self._cut_at_stop()
        return self._release(final=self.stopped)

    def finish(self) -> str:
        """Whatever was held back (text and undecoded ids of an incomplete character), once generation has ended."""
        if not self.stopped and self._read_offset < len(self.ids):
            prefix = self._decode(self.ids[self._prefix_offset : self._read_offset])
            self.text += self._decode(self.ids[self._prefix_offset :])[len(prefix) :]
            self._read_offset = len(self.ids)
            self._cut_at_stop()
        return self._release(final=True)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True) if ids else ""

    def _cut_at_stop(self) -> None:
        start = max(0, self.sent - self.hold)
        hits = [i for s in self.stop if (i := self.text.find(s, start)) >= 0]
        if hits:
            self.text = self.text[: min(hits)]
            self.stopped = True

    def _release(self, final: bool) -> str:
        end = len(self.text) if final or not self.stop else max(self.sent, len(self.text) - self.hold)
        piece, self.sent = self.text[self.sent : end], max(self.sent, end)
        return piece
