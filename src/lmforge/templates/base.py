"""The chat-template contract shared by training, evaluation, chat and serving.

A conversation is a list of message dicts, the same shape `tokenizer.apply_chat_template` takes:
``{"role": "system" | "user" | "assistant" | "tool", "content": str}`` (assistant messages may carry
``"tool_calls"``). Every template turns a conversation into token ids split at assistant turns, so the
encoder can mask exactly the prompt part of each turn and train the response (content + end-of-turn).

Invariants every template must satisfy (tests check them against the family's Jinja template):
  * ``sum(prompt + response for each turn) == tokenizer.apply_chat_template(messages)`` token for token;
  * ``encode_prompt(messages[:-1])`` equals the prompt ids of the last turn's prefix (what inference sends);
  * exactly one BOS, at position 0, when the family uses one.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]


@dataclass(frozen=True)
class EncodedTurn:
    """One assistant turn: `prompt_ids` are masked in training, `response_ids` are trained."""

    prompt_ids: list[int]
    response_ids: list[int]


class ChatTemplate(ABC):
    """Renders conversations to ids, split at assistant turns."""

    #: registry name, e.g. "chatml"
    name: str = ""
    #: special tokens the format writes (added as special tokens by `lmforge init-model`)
    special_tokens: tuple[str, ...] = ()
    #: the family's BOS token, or None when it prepends none
    bos_token: str | None = None
    #: the token that ends an assistant turn (the tokenizer's eos for models built with this template)
    eos_token: str = ""

    @abstractmethod
    def encode_turns(self, tokenizer: Any, messages: list[Message], tools: str | None = None) -> list[EncodedTurn]:
        """Split a conversation that ends with an assistant message into (prompt, response) id pairs.

        Turn k's prompt holds everything after turn k-1's response up to and including the assistant header
        of turn k (the first prompt also holds BOS and the system message); its response holds the assistant
        content and the end-of-turn token(s). Raises `DataError` for conversations the family cannot express
        (e.g. not ending on an assistant turn, roles out of order).
        """

    def encode_turns_many(
        self, tokenizer: Any, conversations: list[tuple[list[Message], str | None]]
    ) -> list[list[EncodedTurn]]:
        """`encode_turns` for each (messages, tools); templates override it to encode all text in one batch."""
        return [self.encode_turns(tokenizer, messages, tools) for messages, tools in conversations]

    @abstractmethod
    def encode_prompt(self, tokenizer: Any, messages: list[Message], tools: str | None = None) -> list[int]:
        """Ids for inference: the conversation (ending with a user/tool turn) plus the assistant header."""

    @abstractmethod
    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        """Every id that ends an assistant turn (e.g. <|eot_id|> and EOS for Llama-3)."""

    def jinja(self) -> str | None:
        """The equivalent Jinja chat template to store in the tokenizer, or None if the family has none."""
        return None
