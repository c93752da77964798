"""`JinjaTemplate`: any Jinja chat template (the tokenizer's own for `template: auto`), rendered in a sandbox.

Turn boundaries come from rendering prefixes: the prompt of assistant turn k is
``render(messages[:k], add_generation_prompt=True)`` minus what came before, its response is
``render(messages[:k+1])`` minus that prompt. This gives correct masks for any template that renders
incrementally, and raises a DataError for one that does not (it rewrites earlier turns).
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from lmforge.templates.base import Message
from lmforge.templates.encoding import Piece, ids_from_segments, special_tokens_of, text_of
from lmforge.templates.segmented import SegmentedTemplate
from lmforge.templates.validation import validate_messages
from lmforge.utils.errors import DataError

_MARK = re.compile("\ue000(\\d+)\ue001")  # private-use sentinels standing in for message contents
# One rendering may take this long and write this much (QUALITY D5): a template from a model folder or a server
# config must not hang a worker with nested range() loops or fill memory. Real chat templates need milliseconds.
RENDER_SECONDS = 1.0
RENDER_MAX_CHARS = 4_000_000
_DEADLINE: ContextVar[float] = ContextVar("lmforge_render_deadline", default=math.inf)


def _raise_exception(message: str) -> None:
    raise TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: Any = None, separators: Any = None, sort_keys=False):
    # Jinja's own tojson escapes HTML; chat templates expect plain JSON (as transformers renders it).
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


class _BoundedRange:
    """The sandbox's range (at most 100,000 items), checking the current rendering's deadline while iterated."""

    def __init__(self, *args: int) -> None:
        self._range = safe_range(*args)

    def __len__(self) -> int:
        return len(self._range)

    def __iter__(self) -> Iterator[int]:
        deadline = _DEADLINE.get()
        for i, value in enumerate(self._range):
            if i % 256 == 0 and time.monotonic() > deadline:
                raise TemplateError(f"rendering took longer than {RENDER_SECONDS:g} s")
            yield value


def render_bounded(template: Any, **context: Any) -> str:
    """Render within RENDER_SECONDS and RENDER_MAX_CHARS; a TemplateError otherwise."""
    deadline = time.monotonic() + RENDER_SECONDS
    token = _DEADLINE.set(deadline)
    try:
        chunks, size = [], 0
        for chunk in template.generate(**context):
            size += len(chunk)
            if size > RENDER_MAX_CHARS:
                raise TemplateError(f"rendering is longer than {RENDER_MAX_CHARS:,} characters")
            if time.monotonic() > deadline:
                raise TemplateError(f"rendering took longer than {RENDER_SECONDS:g} s")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _DEADLINE.reset(token)


@lru_cache(maxsize=16)
def compile_template(source: str) -> Any:
    """Compile in an immutable sandbox: templates come from model repos and are untrusted (QUALITY D4)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["range"] = _BoundedRange
    return env.from_string(source)


def _cut(pieces: list[Piece], start: int, end: int) -> list[Piece]:
    """The pieces covering characters [start, end) of their concatenation."""
    out, pos = [], 0
    for text, is_user_text in pieces:
        lo, hi = max(start - pos, 0), min(end - pos, len(text))
        if lo < hi:
            out.append((text[lo:hi], is_user_text))
        pos += len(text)
    return out


class JinjaTemplate(SegmentedTemplate):
    """Renders a Jinja chat template; message contents are marked as user text so A16 holds here too."""

    def __init__(self, source: str, name: str = "auto", tokenizer: Any = None, **template_kwargs: Any) -> None:
        self.name = name
        self.source = source
        self.template_kwargs = template_kwargs
        compile_template(source)  # fail early on syntax errors
        if tokenizer is not None:  # describe the format like a named template does
            stops = self.stop_token_ids(tokenizer)
            self.eos_token = tokenizer.convert_ids_to_tokens(stops[0]) if stops else ""
            try:
                first = self.render_text(tokenizer, [{"role": "user", "content": "x"}])
            except DataError:
                first = ""
            bos = tokenizer.bos_token
            self.bos_token = bos if bos and first.startswith(bos) else None

    def jinja(self) -> str | None:
        return self.source

    def render_text(self, tokenizer: Any, messages: list[Message], tools: Any = None, add_generation_prompt=False):
        kwargs = {**tokenizer.special_tokens_map, **self.template_kwargs}
        tool_list = json.loads(tools) if isinstance(tools, str) else tools
        if not messages and not add_generation_prompt:
            return ""
        try:
            return render_bounded(
                compile_template(self.source),
                messages=messages,
                tools=tool_list,
                add_generation_prompt=add_generation_prompt,
                **kwargs,
            )
        except TemplateError as err:  # SecurityError is a TemplateError too: re-raised unchanged below
            if type(err).__name__ == "SecurityError":
                raise
            raise DataError(f"chat template '{self.name}' failed: {err}") from err

    def render_pieces(self, tokenizer: Any, messages: list[Message], tools: Any, add_generation_prompt: bool):
        """The rendering with each message content marked as user text (unmarked if the template alters it)."""
        plain = self.render_text(tokenizer, messages, tools, add_generation_prompt)
        marked = [
            {**m, "content": f"\ue000{i}\ue001"} if isinstance(m.get("content"), str) and m["content"] else m
            for i, m in enumerate(messages)
        ]
        text = self.render_text(tokenizer, marked, tools, add_generation_prompt)
        pieces: list[Piece] = []
        pos = 0
        for match in _MARK.finditer(text):
            pieces += [(text[pos : match.start()], False), (messages[int(match.group(1))]["content"], True)]
            pos = match.end()
        pieces.append((text[pos:], False))
        return pieces if text_of(pieces) == plain else [(plain, False)]

    def segments(self, tokenizer: Any, messages: list[Message], tools: Any, add_generation_prompt: bool):
        """(pieces, is_response) segments split at every assistant turn, from prefix renderings."""
        out: list[tuple[list[Piece], bool]] = []
        done = ""
        for k, msg in enumerate(messages):
            if msg["role"] != "assistant":
                continue
            head = self.render_text(tokenizer, messages[:k], tools, True)
            full = self.render_pieces(tokenizer, messages[: k + 1], tools, False)
            full_text = text_of(full)
            if not (head.startswith(done) and full_text.startswith(head)):
                raise DataError(
                    f"chat template '{self.name}' does not render messages[{k}] incrementally "
                    "(it rewrites earlier turns), so turn masks cannot be derived from it"
                )
            out += [(_cut(full, len(done), len(head)), False), (_cut(full, len(head), len(full_text)), True)]
            done = full_text
        final = self.render_pieces(tokenizer, messages, tools, add_generation_prompt)
        if not text_of(final).startswith(done):
            raise DataError(f"chat template '{self.name}' does not render the conversation incrementally")
        out.append((_cut(final, len(done), len(text_of(final))), False))
        return out

    def training_segments(
        self, tokenizer: Any, messages: list[Message], tools: str | None
    ) -> list[tuple[list[Piece], bool]]:
        validate_messages(messages, for_training=True)
        return self.segments(tokenizer, messages, tools, False)

    def encode_prompt(self, tokenizer: Any, messages: list[Message], tools: str | None = None) -> list[int]:
        validate_messages(messages, for_training=False)
        return ids_from_segments(tokenizer, self.segments(tokenizer, messages, tools, True))

    def stop_token_ids(self, tokenizer: Any) -> list[int]:
        """The first special token the template writes after an assistant reply, plus EOS."""
        sample = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "\ue002"}]
        try:
            after = self.render_text(tokenizer, sample).split("\ue002", 1)[-1]
        except DataError:
            after = ""
        found = sorted((after.find(tok), idx) for tok, idx in special_tokens_of(tokenizer).items() if tok in after)
        ids = [found[0][1]] if found else []
        if tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
        return list(dict.fromkeys(ids))
