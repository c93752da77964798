"""`FormatTemplate`: a chat format declared as a handful of format strings (one small object per family).

Placeholders: ``{content}`` (message text), ``{system}`` (in `system_merge`), ``{name}``/``{arguments}`` (in
`tool_call`), ``{tools}`` (in `tools_system`) are user text; ``{bos}``/``{eos}`` are the tokenizer's own BOS/EOS
(for generic formats such as alpaca that are used with any tokenizer). Named families write their special tokens
literally. `assistant` is the trained response: content plus the end-of-turn text.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from lmforge.templates.base import Message
from lmforge.templates.encoding import Piece, ids_from_segments, special_tokens_of
from lmforge.templates.segmented import SegmentedTemplate
from lmforge.templates.validation import validate_messages
from lmforge.utils.errors import ConfigError, DataError

_PLACEHOLDER = re.compile(r"\{(content|system|bos|eos|name|arguments|tools)\}")
Segment = tuple[list[Piece], bool]  # (pieces, is_response)


def fill(fmt: str, values: dict[str, list[Piece]]) -> list[Piece]:
    """Split `fmt` into template-text pieces and the placeholder values (already pieces)."""
    pieces: list[Piece] = []
    for k, part in enumerate(_PLACEHOLDER.split(fmt)):
        if k % 2:
            pieces.extend(values[part])
        elif part:
            pieces.append((part, False))
    return pieces


def tools_text(tools: str | list | None) -> str:
    """Tool definitions as one JSON object per line (a JSON list string is parsed first)."""
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError:
            return tools
    items = tools if isinstance(tools, list) else [tools]
    return "\n".join(json.dumps(tool, ensure_ascii=False) for tool in items)


@dataclass(frozen=True, kw_only=True)
class FormatTemplate(SegmentedTemplate):
    """A family's chat format; `jinja_source` is our equivalent Jinja template (tests check they agree)."""

    name: str
    user: str
    assistant: str
    generation_prompt: str
    system: str | None = None  # None: the system text goes into the first user turn through `system_merge`
    system_merge: str = "{system}\n\n{content}"
    default_system: str = ""
    prefix: str = ""
    tool: str | None = None  # one tool result; None: the family renders no tool turns
    tool_group: tuple[str, str] = ("", "")  # around each run of consecutive tool results
    tool_call: str = ""
    tool_call_sep: str = "\n"  # between the content and each tool call
    tools_system: str = ""
    trim: bool = False
    stop_tokens: tuple[str, ...] = ()
    special_tokens: tuple[str, ...] = ()
    bos_token: str | None = None
    eos_token: str = ""
    jinja_source: str | None = field(default=None, repr=False)

    def jinja(self) -> str | None:
        return self.jinja_source

    # -- public API -------------------------------------------------------------------------------------------
    def training_segments(
        self, tokenizer: Any, messages: list[Message], tools: str | None
    ) -> list[tuple[list[Piece], bool]]:
        validate_messages(messages, for_training=True, supports_tools=self.tool is not None)
        return self.render(tokenizer, messages, tools, False)

    def encode_prompt(self, tokenizer: Any, messages: list[Message], tools: str | None = None) -> list[int]:
        validate_messages(messages, for_training=False, supports_tools=self.tool is not None)
        return ids_from_segments(tokenizer, self.render(tokenizer, messages, tools, True))

    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        specials = special_tokens_of(tokenizer)
        ids = [specials[tok] for tok in self.stop_tokens if tok in specials]
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        return list(dict.fromkeys(ids))

    # -- rendering --------------------------------------------------------------------------------------------
    def render(self, tokenizer: Any, messages: list[Message], tools: str | None, add_generation_prompt: bool):
        """The conversation as segments; each assistant turn yields a prompt segment and a response segment."""
        values = {"bos": [(self._bos(tokenizer), False)], "eos": [(self._eos(tokenizer), False)]}
        system, rest = self._system_pieces(messages, tools)
        prompt = fill(self.prefix, values)
        if system is not None and self.system is not None:
            prompt += fill(self.system, {**values, "content": system})
            system = None
        segments: list[Segment] = []
        for i, msg in enumerate(rest):
            role, content = msg["role"], [(self._text(msg), True)]
            if role == "user" and system is not None:
                content, system = fill(self.system_merge, {"system": system, "content": content}), None
            if role == "user":
                prompt += fill(self.user, {**values, "content": content})
            elif role == "tool":
                opens = i == 0 or rest[i - 1]["role"] != "tool"
                closes = i + 1 == len(rest) or rest[i + 1]["role"] != "tool"
                prompt += [(self.tool_group[0], False)] if opens else []
                prompt += fill(self.tool or "", {**values, "content": content})
                prompt += [(self.tool_group[1], False)] if closes else []
            elif system is not None:
                raise DataError(
                    f"template '{self.name}' puts the system prompt into the first user turn, got '{role}'"
                )
            else:
                segments.append((prompt + fill(self.generation_prompt, values), False))
                body = self.assistant_body(msg, i, rest)
                segments.append((fill(self.assistant, {**values, "content": body}), True))
                prompt = []
        if add_generation_prompt:
            prompt += fill(self.generation_prompt, values)
        segments.append((prompt, False))
        return segments

    def assistant_body(self, msg: Message, index: int, messages: list[Message]) -> list[Piece]:
        """What `{content}` expands to in `assistant`: the text, then each tool call."""
        body, has_text = self.reply_pieces(msg, index, messages)
        for k, call in enumerate(msg.get("tool_calls") or []):
            fn = call.get("function", call)
            args = fn.get("arguments", {})
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            body += [(self.tool_call_sep, False)] if k or has_text else []
            body += fill(self.tool_call, {"name": [(fn["name"], True)], "arguments": [(args, True)]})
        return body

    def reply_pieces(self, msg: Message, index: int, messages: list[Message]) -> tuple[list[Piece], bool]:
        """The reply text as pieces, and whether it is non-empty (a family hook, e.g. for think blocks)."""
        text = self._text(msg)
        return ([(text, True)] if text else []), bool(text)

    def _text(self, msg: Message) -> str:
        text = msg.get("content") or ""
        return text.strip() if self.trim else text

    def _system_pieces(self, messages: list[Message], tools: str | None) -> tuple[list[Piece] | None, list[Message]]:
        has_system = messages[0]["role"] == "system"
        text = self._text(messages[0]) if has_system else self.default_system
        pieces: list[Piece] = [(text, True)] if text else []
        if tools and self.tools_system:
            pieces += [("\n\n", False)] if text else []
            pieces += fill(self.tools_system, {"tools": [(tools_text(tools), True)]})
        keep = bool(pieces) or (has_system and self.system is not None)
        return (pieces if keep else None), messages[1:] if has_system else messages

    def _bos(self, tokenizer: Any) -> str:
        if "{bos}" not in self.prefix + self.user or tokenizer.bos_token is None:
            return ""
        adds_bos = tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [tokenizer.bos_token_id]
        return tokenizer.bos_token if adds_bos else ""

    def _eos(self, tokenizer: Any) -> str:
        if "{eos}" not in self.assistant:
            return ""
        if tokenizer.eos_token is None:
            raise ConfigError(f"template '{self.name}' ends replies with the tokenizer's eos_token, which is not set")
        return tokenizer.eos_token
