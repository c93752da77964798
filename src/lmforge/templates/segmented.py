"""Shared encoding for templates that render a conversation as text segments split at assistant turns."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from lmforge.templates.base import ChatTemplate, EncodedTurn, Message
from lmforge.templates.encoding import Piece, turns_from_segments_many


class SegmentedTemplate(ChatTemplate):
    """A template that only has to render (and validate) training segments; ids come from one batch encode."""

    @abstractmethod
    def training_segments(
        self, tokenizer: Any, messages: list[Message], tools: str | None
    ) -> list[tuple[list[Piece], bool]]:
        """Validated (pieces, is_response) segments of a conversation that ends with an assistant turn."""

    def encode_turns(self, tokenizer: Any, messages: list[Message], tools: str | None = None) -> list[EncodedTurn]:
        return self.encode_turns_many(tokenizer, [(messages, tools)])[0]

    def encode_turns_many(
        self, tokenizer: Any, conversations: list[tuple[list[Message], str | None]]
    ) -> list[list[EncodedTurn]]:
        segments = [self.training_segments(tokenizer, messages, tools) for messages, tools in conversations]
        return turns_from_segments_many(tokenizer, segments)
