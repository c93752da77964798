"""Dataset formats: every supported row shape converges on one conversation shape.

sft rows become ``{"messages": [{"role", "content", optional "tool_calls"}...], "tools": str | None}`` and pt
rows ``{"text": str}``. Field names (prompt, query, response, history, system, messages, tools, text, chosen,
rejected, kto_tag) follow LLaMA-Factory's `columns` keys so its dataset_info.json maps unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from lmforge.config.schema import DataConfig, DatasetSpec
from lmforge.config.stages import DataKind, stage_spec
from lmforge.data.readers import iter_source
from lmforge.utils.errors import DataError
from lmforge.utils.registry import Registry


class DropRow(Exception):
    """A row that is valid but unusable (e.g. empty response); counted under `reason`."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Format:
    """A row shape: default field -> column mapping, required fields, the data kind it feeds, its converter."""

    name: str
    kind: DataKind  # the stages whose StageSpec.data is this kind read it
    defaults: dict[str, str]
    required: tuple[str, ...]
    convert: Callable[[dict[str, Any], DatasetSpec, dict[str, str]], dict[str, Any]] | None


FORMATS: Registry[Format] = Registry("dataset format")
SHAREGPT_TAGS = {
    "role_tag": "from",
    "content_tag": "value",
    "user_tag": "human",
    "assistant_tag": "gpt",
    "observation_tag": "observation",
    "function_tag": "function_call",
    "system_tag": "system",
}
OPENAI_ROLES = ("system", "user", "assistant", "tool")


def column_mapping(fmt: Format, spec: DatasetSpec) -> dict[str, str]:
    """Field -> column for this dataset: the format's defaults overridden by the spec's `columns`."""
    unknown = set(spec.columns) - set(fmt.defaults)
    if unknown:
        raise DataError(
            f"dataset {spec.name!r}: unknown field(s) {sorted(unknown)} in columns for format {fmt.name}; "
            f"valid fields: {', '.join(fmt.defaults)}"
        )
    return {**fmt.defaults, **spec.columns}


def effective_format(spec: DatasetSpec, columns: list[str]) -> Format:
    """The spec's format, except that chat-format rows with chosen/rejected columns are preference rows
    (LLaMA-Factory writes `formatting: sharegpt` plus `ranking: true` for them)."""
    fmt = FORMATS.get(spec.format)
    chosen = {spec.columns.get("chosen", "chosen"), spec.columns.get("rejected", "rejected")}
    if fmt.kind == "chat" and chosen <= set(columns):
        return FORMATS.get("preference")
    return fmt


def check_columns(spec: DatasetSpec, columns: list[str], stage: str) -> dict[str, str]:
    """Fail before tokenizing when the format does not fit the stage or required columns are missing."""
    fmt = effective_format(spec, columns)
    mapping = column_mapping(fmt, spec)
    kind = stage_spec(stage).data
    if fmt.kind != kind:
        expected = [f"{f.name} ({', '.join(f.defaults[r] for r in f.required)})" for f in _formats_for(kind)]
        raise DataError(
            f"dataset {spec.name!r}: dataset format {fmt.name} does not match stage {stage}; "
            f"stage {stage} expects fields of: {'; '.join(expected)}"
        )
    missing = [f for f in fmt.required if mapping[f] not in columns]
    if missing:
        hint = " (this looks like ShareGPT data: set format: sharegpt)" if "conversations" in columns else ""
        raise DataError(
            f"dataset {spec.name!r}: missing column(s) {', '.join(repr(mapping[f]) for f in missing)} "
            f"for format {fmt.name}; columns found: {', '.join(columns) or '(none)'}; "
            f"column mapping: {mapping}{hint}"
        )
    return mapping


def _formats_for(kind: DataKind) -> list[Format]:
    return [FORMATS.get(n) for n in FORMATS if FORMATS.get(n).kind == kind]


def _text(value: Any, path: str, *, optional: bool = False) -> str:
    """A text field: str, or (for content) a list of {"type": "text"} parts; anything else is rejected."""
    if value is None and optional:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value and all(isinstance(p, dict) and p.get("type") == "text" for p in value):
        return "".join(_text(p.get("text"), f"{path}[{i}].text") for i, p in enumerate(value))
    raise DataError(f"{path}: expected text, got {type(value).__name__} {_short(value)}")


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _tools(row: dict[str, Any], mapping: dict[str, str]) -> str | None:
    """Tool definitions as a JSON list in the OpenAI shape chat templates read ({"type": "function", "function":
    schema}); LLaMA-Factory's bare function schemas are wrapped."""
    column = mapping.get("tools", "")
    value = row.get(column)
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise DataError(f"{column}: tools are not valid JSON ({exc.msg}): {_short(value)}") from None
    tools = value if isinstance(value, list) else [value]
    if not all(isinstance(tool, dict) for tool in tools):
        raise DataError(f"{column}: expected a list of tool (function) definitions, got {_short(value)}")
    wrapped = [tool if "function" in tool else {"type": "function", "function": tool} for tool in tools]
    return json.dumps(wrapped, ensure_ascii=False)


def _check_responses(messages: list[dict[str, Any]]) -> None:
    for msg in messages:
        if msg["role"] == "assistant" and not msg.get("tool_calls") and not msg["content"].strip():
            raise DropRow("empty assistant response")


def convert_alpaca(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = _text(row.get(mapping["system"]), mapping["system"], optional=True)
    if system:
        messages.append({"role": "system", "content": system})
    history = row.get(mapping["history"]) or []
    if not isinstance(history, list):
        raise DataError(f"{mapping['history']}: expected a list of [prompt, response] pairs")
    for i, pair in enumerate(history):
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise DataError(f"{mapping['history']}[{i}]: expected a [prompt, response] pair, got {_short(pair)}")
        messages.append({"role": "user", "content": _text(pair[0], f"{mapping['history']}[{i}][0]")})
        messages.append({"role": "assistant", "content": _text(pair[1], f"{mapping['history']}[{i}][1]")})
    prompt = _text(row.get(mapping["prompt"]), mapping["prompt"])
    query = _text(row.get(mapping["query"]), mapping["query"], optional=True)
    messages.append({"role": "user", "content": f"{prompt}\n{query}" if query else prompt})
    messages.append({"role": "assistant", "content": _text(row.get(mapping["response"]), mapping["response"])})
    _check_responses(messages)
    return {"messages": messages, "tools": _tools(row, mapping)}


def _tool_calls(value: str, path: str) -> list[dict[str, Any]]:
    """A ShareGPT function_call value: JSON {"name", "arguments"} or a list of them."""
    try:
        calls = json.loads(value)
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: function call is not valid JSON ({exc.msg}): {_short(value)}") from None
    calls = calls if isinstance(calls, list) else [calls]
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            raise DataError(f"{path}: each function call needs a 'name' and 'arguments', got {_short(call)}")
    return [{"type": "function", "function": {"name": c["name"], "arguments": c.get("arguments", {})}} for c in calls]


def _link_tool_calls(messages: list[dict[str, Any]]) -> None:
    """Give ShareGPT tool calls ids and their results the matching tool_call_id, in order (templates such as
    Mistral's require 9-character alphanumeric ids)."""
    pending: list[str] = []
    count = 0
    for msg in messages:
        for call in msg.get("tool_calls") or []:
            call["id"] = f"call{count:05d}"
            pending.append(call["id"])
            count += 1
        if msg["role"] == "tool" and pending:
            msg["tool_call_id"] = pending.pop(0)


def convert_sharegpt(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    tags = {**SHAREGPT_TAGS, **spec.tags}
    roles = {
        tags["user_tag"]: "user",
        tags["assistant_tag"]: "assistant",
        tags["observation_tag"]: "tool",
        tags["function_tag"]: "function_call",
        tags["system_tag"]: "system",
    }
    col = mapping["messages"]
    turns = row.get(col)
    if not isinstance(turns, list):
        raise DataError(f"{col}: expected a list of turns, got {type(turns).__name__}")
    messages: list[dict[str, Any]] = []
    system = _text(row.get(mapping["system"]), mapping["system"], optional=True)
    if system:
        messages.append({"role": "system", "content": system})
    for i, turn in enumerate(turns):
        path = f"{col}[{i}]"
        if not isinstance(turn, dict):
            raise DataError(f"{path}: expected an object, got {_short(turn)}")
        tag = turn.get(tags["role_tag"])
        if tag not in roles:
            raise DataError(
                f"{path}.{tags['role_tag']}: unknown role {tag!r}; expected one of {', '.join(map(repr, roles))} "
                f"(set tags to map other role names)"
            )
        content = _text(turn.get(tags["content_tag"]), f"{path}.{tags['content_tag']}")
        if roles[tag] == "function_call":
            messages.append({"role": "assistant", "content": "", "tool_calls": _tool_calls(content, path)})
        else:
            messages.append({"role": roles[tag], "content": content})
    _check_responses(messages)
    _link_tool_calls(messages)
    return {"messages": messages, "tools": _tools(row, mapping)}


_OPENAI_EXTRA_KEYS = ("tool_call_id", "name", "reasoning_content")


def convert_openai(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    col = mapping["messages"]
    raw = row.get(col)
    if not isinstance(raw, list):
        raise DataError(f"{col}: expected a list of messages, got {type(raw).__name__}")
    messages: list[dict[str, Any]] = []
    for i, msg in enumerate(raw):
        path = f"{col}[{i}]"
        if not isinstance(msg, dict):
            raise DataError(f"{path}: expected an object, got {_short(msg)}")
        role = msg.get("role")
        if role not in OPENAI_ROLES:
            hint = " (ShareGPT role names: set format: sharegpt with tags)" if role in ("human", "gpt") else ""
            raise DataError(f"{path}.role: unknown role {role!r}; expected one of {', '.join(OPENAI_ROLES)}{hint}")
        calls = msg.get("tool_calls")
        out: dict[str, Any] = {
            "role": role,
            "content": _text(msg.get("content"), f"{path}.content", optional=bool(calls)),
        }
        if calls:
            if role != "assistant" or not isinstance(calls, list):
                raise DataError(f"{path}.tool_calls: expected a list on an assistant message")
            out["tool_calls"] = calls
        for key in _OPENAI_EXTRA_KEYS:  # what chat templates read besides role/content
            if isinstance(msg.get(key), str):
                out[key] = msg[key]
        messages.append(out)
    _check_responses(messages)
    return {"messages": messages, "tools": _tools(row, mapping)}


def convert_text(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    text = _text(row.get(mapping["text"]), mapping["text"])
    if not text.strip():
        raise DropRow("empty text")
    return {"text": text}


def convert_row(fmt: Format, row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str], index: int) -> dict:
    """Convert one row; type errors are re-raised naming the dataset and row index."""
    assert fmt.convert is not None
    try:
        return fmt.convert(row, spec, mapping)
    except DataError as exc:
        raise DataError(f"dataset {spec.name!r} ({spec.path}), row {index} (0-based): {exc}") from None


def iter_conversations(
    spec: DatasetSpec, data: DataConfig, stage: str, counts: Any, bad_rows: list, streaming: bool = False
) -> Iterator[dict[str, Any]]:
    """Rows of one dataset, columns checked on the first row, converted; drops counted in `counts` if given."""
    limits = [n for n in (spec.max_samples, data.max_samples) if n is not None]
    rows = iter_source(
        spec.path,
        spec.file_type,
        encoding=data.encoding,
        on_bad_row=data.on_bad_row,
        bad_rows=bad_rows,
        max_line_bytes=data.max_line_bytes,
        subset=spec.subset,
        split=spec.split,
        streaming=streaming,
    )
    mapping: dict[str, str] | None = None
    fmt = FORMATS.get(spec.format)
    for index, row in enumerate(rows):
        if limits and index >= min(limits):
            return
        if mapping is None:
            mapping, fmt = check_columns(spec, list(row), stage), effective_format(spec, list(row))
        if counts is not None:
            counts.read += 1
        try:
            yield convert_row(fmt, row, spec, mapping, index)
        except DropRow as drop:
            if counts is not None:
                counts.drop(drop.reason)


FORMATS.register(
    "alpaca",
    Format(
        "alpaca",
        "chat",
        {
            "prompt": "instruction",
            "query": "input",
            "response": "output",
            "system": "system",
            "history": "history",
            "tools": "tools",
        },
        ("prompt", "response"),
        convert_alpaca,
    ),
)
FORMATS.register(
    "sharegpt",
    Format(
        "sharegpt",
        "chat",
        {"messages": "conversations", "system": "system", "tools": "tools"},
        ("messages",),
        convert_sharegpt,
    ),
)
FORMATS.register(
    "openai", Format("openai", "chat", {"messages": "messages", "tools": "tools"}, ("messages",), convert_openai)
)
FORMATS.register("text", Format("text", "text", {"text": "text"}, ("text",), convert_text))


def _convert_preference(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    from lmforge.data.preference import convert_preference  # it builds on this module's converters

    return convert_preference(row, spec, mapping)


def _convert_kto(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    from lmforge.data.preference import convert_kto

    return convert_kto(row, spec, mapping)


FORMATS.register(
    "preference",
    Format(
        "preference",
        "pairs",
        {
            "prompt": "prompt",
            "query": "input",
            "messages": "conversations",
            "chosen": "chosen",
            "rejected": "rejected",
            "system": "system",
            "tools": "tools",
        },
        ("chosen", "rejected"),
        _convert_preference,
    ),
)
FORMATS.register(
    "kto",
    Format(
        "kto",
        "kto",
        {"messages": "messages", "kto_tag": "label", "prompt": "prompt", "response": "completion", "tools": "tools"},
        ("kto_tag",),
        _convert_kto,
    ),
)
# Prompts-only rows for the online RL stages (ppo, grpo); converted by data/rl_prompts.py, which also takes alpaca,
# sharegpt and openai rows (a final assistant turn / alpaca output becomes the reference answer).
FORMATS.register(
    "prompt",
    Format("prompt", "prompts", {"prompt": "prompt", "reference": "reference", "system": "system"}, ("prompt",), None),
)
