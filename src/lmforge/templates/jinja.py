"""The sandboxed Jinja renderer every chat template goes through (named templates and `template: auto`).

It renders as transformers' `apply_chat_template` does (same globals, filters and message preprocessing), so a
named template and the model's own template can be compared text for text; unlike it, a rendering is bounded in
time and size (QUALITY D5) and template errors become DataErrors naming the template.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any

from jinja2 import TemplateError, nodes
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from lmforge.utils.errors import DataError

Message = dict[str, Any]

# One rendering may take this long and write this much (QUALITY D5): a template from a model folder or a server
# config must not hang a worker with nested range() loops or fill memory. Real chat templates need milliseconds.
RENDER_SECONDS = 1.0
RENDER_MAX_CHARS = 4_000_000
_DEADLINE: ContextVar[float] = ContextVar("lmforge_render_deadline", default=math.inf)


class RenderLimitError(DataError):
    """A rendering ran past RENDER_SECONDS or RENDER_MAX_CHARS: the template, not the conversation, is at fault."""


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
                raise RenderLimitError(f"rendering took longer than {RENDER_SECONDS:g} s")
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
                raise RenderLimitError(f"rendering is longer than {RENDER_MAX_CHARS:,} characters")
            if time.monotonic() > deadline:
                raise RenderLimitError(f"rendering took longer than {RENDER_SECONDS:g} s")
            chunks.append(chunk)
        return "".join(chunks)
    finally:
        _DEADLINE.reset(token)


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` (transformers' assistant-mask tag) renders its body unchanged."""

    tags = {"generation"}  # noqa: RUF012  (jinja2 declares it a plain class attribute, read per class)

    def parse(self, parser: Any) -> Any:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


@lru_cache(maxsize=64)
def compile_template(source: str) -> Any:
    """Compile in an immutable sandbox: templates come from model repos and are untrusted (QUALITY D4)."""
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, _GenerationTag]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    env.globals["range"] = _BoundedRange
    return env.from_string(source)


_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _template_messages(messages: list[Message]) -> list[Message]:
    """Messages as transformers hands them to a template: keys whose value is None dropped (templates render a
    literal "None" otherwise), reasoning under both names templates read."""
    out = []
    for msg in messages:
        msg = {key: value for key, value in msg.items() if value is not None}
        reasoning = next((msg[key] for key in _REASONING_FIELDS if msg.get(key) is not None), None)
        out.append(msg if reasoning is None else {"thinking": reasoning, **msg, "reasoning_content": reasoning})
    return out


def _tool_list(tools: Any) -> Any:
    if not isinstance(tools, str):
        return tools
    try:
        return json.loads(tools)
    except json.JSONDecodeError as err:
        raise DataError(f"tools: not valid JSON ({err})") from err


def render_chat(
    source: str,
    messages: list[Message],
    context: dict[str, Any],
    tools: Any = None,
    add_generation_prompt: bool = False,
    name: str = "auto",
) -> str:
    """Render a chat template as `apply_chat_template(..., tokenize=False)` does, bounded and sandboxed.

    A template's own `raise_exception` (and any other rendering error) becomes a DataError naming the template;
    a sandbox SecurityError is re-raised unchanged.
    """
    try:
        return render_bounded(
            compile_template(source),
            **context,
            messages=_template_messages(messages),
            tools=_tool_list(tools),
            add_generation_prompt=add_generation_prompt,
        )
    except RenderLimitError as err:
        raise RenderLimitError(f"chat template '{name}': {err}") from err
    except TemplateError as err:
        if type(err).__name__ == "SecurityError":
            raise
        raise DataError(f"chat template '{name}' refused the conversation: {err}") from err
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as err:
        raise DataError(f"chat template '{name}' failed on the conversation: {err}") from err
