"""Tool calling on chat completions: `tools` are rendered by the chat template, the reply's calls parsed back.

The template writes the tool definitions in the format its model was trained on (`encode_prompt(..., tools)`), and
the same template source tells which call syntax the model answers with. Formats parsed back into `tool_calls`:

* ``hermes`` (Qwen2.5/Qwen3, ChatML, Hermes): ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``, any number;
* ``llama3_json`` (Llama-3.1/3.2): the whole reply is ``{"name": ..., "parameters": {...}}`` (after an optional
  ``<|python_tag|>``);
* ``mistral`` (Mistral v0.3 / v3 templates): ``[TOOL_CALLS] [{"name": ..., "arguments": {...}}, ...]``.

A template with another (or no) tool syntax gets a 400 rather than tools silently dropped. `tool_choice` "required"
or a named function would need constrained decoding to force a call, which this server does not have: also a 400.
A reply whose call text is not valid JSON is returned as plain content, never half-parsed.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from lmforge.inference.api_schema import ApiError, ChatCompletionRequest

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

SUPPORTED = "hermes <tool_call> JSON (Qwen, ChatML), Llama-3.1 JSON, Mistral [TOOL_CALLS]"
_HERMES = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|\Z)", re.S)
_MISTRAL_MARK = "[TOOL_CALLS]"
_PYTHON_TAG = "<|python_tag|>"


@dataclass(frozen=True)
class ToolUse:
    """What a request's tools mean for its prompt and its reply."""

    tools_json: str  # the definitions as the template receives them
    format: str  # hermes | llama3_json | mistral
    parallel: bool  # false: only the first call is returned


def detect_format(template_source: str | None) -> str | None:
    """The call syntax a chat template teaches, from its Jinja source (None: one we cannot parse)."""
    source = template_source or ""
    if "<tool_call>" in source:
        return "hermes"
    if _MISTRAL_MARK in source:
        return "mistral"
    if _PYTHON_TAG in source or '"parameters": ' in source:
        return "llama3_json"
    return None


def tool_use(req: ChatCompletionRequest, template: ChatTemplate) -> ToolUse | None:
    """The request's tool settings, or None when no tools are offered (or tool_choice is "none")."""
    if not req.tools or req.tool_choice == "none":
        return None
    if req.tool_choice not in (None, "auto"):
        which = "'required'" if req.tool_choice == "required" else "a named function"
        raise ApiError(
            400,
            f"tool_choice {which} needs constrained decoding to force a tool call, which this server does not "
            "have; use 'auto' (the model decides) or 'none'",
            param="tool_choice",
        )
    found = detect_format(template.jinja())
    if found is None:
        raise ApiError(
            400,
            f"tools: the chat template {template.name!r} has no tool-call format this server can parse back "
            f"(supported: {SUPPORTED}); send the request without tools",
            param="tools",
            code="tools_not_supported",
        )
    tools = json.dumps([t.model_dump(exclude_none=True) for t in req.tools], ensure_ascii=False)
    return ToolUse(tools, found, req.parallel_tool_calls is not False)


def check_rendered(template: ChatTemplate, with_tools: list[int], without_tools: list[int]) -> None:
    """A template that renders the same prompt with and without tools ignores them: refuse instead."""
    if with_tools == without_tools:
        raise ApiError(
            400,
            f"tools: the chat template {template.name!r} does not render tool definitions; send the request "
            "without tools or serve with a template that has a tool format",
            param="tools",
            code="tools_not_supported",
        )


def parse(text: str, use: ToolUse) -> tuple[str, list[dict[str, Any]]]:
    """(content outside the calls, OpenAI `tool_calls`) of a reply; no calls when none parse."""
    parser = {"hermes": _hermes, "llama3_json": _llama3_json, "mistral": _mistral}[use.format]
    content, calls = parser(text)
    if calls is None:
        return text, []
    wire = [_wire(call, use.format) for call in calls]
    return content.strip(), wire if use.parallel else wire[:1]


def _hermes(text: str) -> tuple[str, list[dict] | None]:
    calls, kept, pos = [], [], 0
    for match in _HERMES.finditer(text):
        call = _call(match.group(1), "arguments")
        if call is None:
            return text, None
        calls.append(call)
        kept.append(text[pos : match.start()])
        pos = match.end()
    return "".join([*kept, text[pos:]]), calls or None


def _llama3_json(text: str) -> tuple[str, list[dict] | None]:
    body = text.strip().removeprefix(_PYTHON_TAG).strip()
    call = _call(body, "parameters") or _call(body, "arguments")
    return ("", [call]) if call is not None else (text, None)


def _mistral(text: str) -> tuple[str, list[dict] | None]:
    before, mark, after = text.partition(_MISTRAL_MARK)
    if not mark:
        return text, None
    try:
        items = json.loads(after.strip())
    except json.JSONDecodeError:
        return text, None
    items = items if isinstance(items, list) else [items]
    calls = [call for item in items if (call := _call(json.dumps(item), "arguments")) is not None]
    return (before, calls) if calls and len(calls) == len(items) else (text, None)


def _call(body: str, arguments_key: str) -> dict[str, Any] | None:
    """{"name", "arguments" (dict), "id" (if given)} from one call's JSON text, or None if it is not one."""
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict) or not isinstance(obj.get("name"), str) or arguments_key not in obj:
        return None
    arguments = obj[arguments_key]
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None
    if not isinstance(arguments, dict):
        return None
    return {"name": obj["name"], "arguments": arguments, "id": obj.get("id")}


def _wire(call: dict[str, Any], fmt: str) -> dict[str, Any]:
    """OpenAI's tool_call object; Mistral templates require 9-character alphanumeric call ids."""
    call_id = call["id"] if isinstance(call["id"], str) and call["id"] else None
    if call_id is None:
        alphabet = string.ascii_letters + string.digits
        call_id = (
            "".join(secrets.choice(alphabet) for _ in range(9))
            if fmt == "mistral"
            else f"call_{uuid.uuid4().hex[:24]}"
        )
    arguments = json.dumps(call["arguments"], ensure_ascii=False)
    return {"id": call_id, "type": "function", "function": {"name": call["name"], "arguments": arguments}}
