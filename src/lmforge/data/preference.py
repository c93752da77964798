"""Preference and KTO rows -> one shape: {"prompt": messages ending with a user turn, "chosen": [...],
"rejected": [...]} and {"messages": [...], "label": bool}.

Accepted preference shapes (any field may be a string, one message, or a message list):
  * LLaMA-Factory sharegpt: `conversations` (prompt turns) + `chosen`/`rejected` single {from, value} messages;
  * openai: `prompt` / `chosen` / `rejected` message lists (role/content), or plain strings (alpaca-like);
  * full dialogues sharing a prefix, no prompt column (Anthropic HH text "\\n\\nHuman: ...\\n\\nAssistant: ...",
    or message lists): split on the longest common message prefix that ends with a user turn.
Pairs that cannot teach anything (identical responses, no shared prompt, empty response) are dropped with a
counted reason (`DropRow`), never silently.
"""

from __future__ import annotations

import re
from typing import Any

from lmforge.config.schema import DatasetSpec
from lmforge.data.formats import (
    SHAREGPT_TAGS,
    DropRow,
    _check_responses,
    _short,
    _text,
    _tools,
    convert_openai,
    convert_sharegpt,
)
from lmforge.utils.errors import DataError

HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
HH_ROLES = {"Human": "user", "Assistant": "assistant"}
DROP_IDENTICAL = "chosen and rejected are identical"
DROP_NO_PROMPT = "chosen and rejected share no prompt ending with a user turn"
DROP_PROMPT_END = "prompt does not end with a user turn"


def parse_hh_dialogue(text: str, path: str) -> list[dict[str, Any]]:
    """Anthropic HH text ("\\n\\nHuman: ...\\n\\nAssistant: ...") -> messages."""
    parts = HH_TURN.split(text)
    if parts[0].strip() or len(parts) < 3:
        expected = "'\\n\\nHuman: ' / '\\n\\nAssistant: ' turns"
        raise DataError(f"{path}: expected a dialogue of {expected}, got {_short(text)}")
    return [{"role": HH_ROLES[parts[i]], "content": parts[i + 1]} for i in range(1, len(parts), 2)]


def _messages(value: Any, path: str, spec: DatasetSpec, role: str) -> list[dict[str, Any]]:
    """A field as messages: a string is one `role` message (or an HH dialogue), a dict one message, a list many."""
    if isinstance(value, str):
        return parse_hh_dialogue(value, path) if HH_TURN.match(value) else [{"role": role, "content": value}]
    turns = [value] if isinstance(value, dict) else value
    if not isinstance(turns, list) or not turns:
        raise DataError(f"{path}: expected text, a message or a list of messages, got {_short(value)}")
    tags = {**SHAREGPT_TAGS, **spec.tags}
    if isinstance(turns[0], dict) and tags["role_tag"] in turns[0] and "role" not in turns[0]:
        converted = convert_sharegpt({"m": turns}, spec, {"messages": "m", "system": "", "tools": ""})
    else:
        converted = convert_openai({"m": turns}, spec, {"messages": "m", "tools": ""})
    return converted["messages"]


def _prompt_messages(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> list[dict[str, Any]]:
    """The prompt from `messages`/`conversations`, or `prompt` (+ `query`), with an optional system message."""
    messages: list[dict[str, Any]] = []
    system = _text(row.get(mapping.get("system", "")), mapping.get("system", "system"), optional=True)
    if system:
        messages.append({"role": "system", "content": system})
    if row.get(mapping["messages"]) not in (None, [], ""):
        return messages + _messages(row[mapping["messages"]], mapping["messages"], spec, "user")
    value = row.get(mapping["prompt"])
    if isinstance(value, str):
        query = _text(row.get(mapping.get("query", "")), mapping.get("query", "query"), optional=True)
        return [*messages, {"role": "user", "content": f"{value}\n{query}" if query else value}]
    return messages + _messages(value, mapping["prompt"], spec, "user")


def split_shared_prefix(
    chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """(prompt, chosen tail, rejected tail): the longest common message prefix that ends with a user turn."""
    if chosen == rejected:
        raise DropRow(DROP_IDENTICAL)
    common = 0
    while common < min(len(chosen), len(rejected)) and chosen[common] == rejected[common]:
        common += 1
    while common > 0 and chosen[common - 1]["role"] != "user":
        common -= 1
    if common == 0 or common >= min(len(chosen), len(rejected)):
        raise DropRow(DROP_NO_PROMPT)
    return chosen[:common], chosen[common:], rejected[common:]


def convert_preference(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    """One preference row -> {"prompt", "chosen", "rejected", "tools"} (see the module docstring)."""
    has_prompt = row.get(mapping["messages"]) not in (None, [], "") or row.get(mapping["prompt"]) not in (None, "")
    chosen = _messages(row.get(mapping["chosen"]), mapping["chosen"], spec, "assistant")
    rejected = _messages(row.get(mapping["rejected"]), mapping["rejected"], spec, "assistant")
    if has_prompt:
        prompt = _prompt_messages(row, spec, mapping)
        if chosen == rejected:
            raise DropRow(DROP_IDENTICAL)
    else:
        prompt, chosen, rejected = split_shared_prefix(chosen, rejected)
    if not prompt or prompt[-1]["role"] != "user":
        raise DropRow(DROP_PROMPT_END)
    for response in (chosen, rejected):
        if response[-1]["role"] != "assistant":
            raise DataError(f"{mapping['chosen']}/{mapping['rejected']}: responses must end with an assistant turn")
        _check_responses(response)
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected, "tools": _tools(row, mapping)}


def kto_label(value: Any, column: str) -> bool:
    """A KTO label must be a real boolean (A9): strings like "true"/"good" or 0/1 are refused, not guessed."""
    if isinstance(value, bool):
        return value
    raise DataError(
        f"{column}: expected a boolean label (true = desirable, false = undesirable), got "
        f"{type(value).__name__} {_short(value)}; dataset format kto does not match stage kto unless every row has "
        f"fields messages (a conversation ending with an assistant turn) and {column} (boolean)"
    )


def convert_kto(row: dict[str, Any], spec: DatasetSpec, mapping: dict[str, str]) -> dict[str, Any]:
    """One KTO row -> {"messages": [... ending with the judged assistant turn], "label": bool, "tools"}."""
    label = kto_label(row.get(mapping["kto_tag"]), mapping["kto_tag"])
    if row.get(mapping["messages"]) not in (None, [], ""):
        messages = _messages(row[mapping["messages"]], mapping["messages"], spec, "user")
    else:
        prompt = _text(row.get(mapping["prompt"]), mapping["prompt"])
        response = _text(row.get(mapping["response"]), mapping["response"])
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
    if len(messages) < 2 or messages[-1]["role"] != "assistant":
        raise DataError(f"{mapping['messages']}: a KTO example must end with the assistant turn that is judged")
    _check_responses(messages[-1:])
    return {"messages": messages, "label": label, "tools": _tools(row, mapping)}
