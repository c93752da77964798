"""Conversation checks shared by every template (QUALITY A6): reject what a template would render wrongly."""

from __future__ import annotations

from lmforge.templates.base import Message
from lmforge.utils.errors import DataError

ROLES = ("system", "user", "assistant", "tool")

# role -> roles allowed right before it (None = first message)
_MAY_FOLLOW: dict[str, tuple[str | None, ...]] = {
    "user": (None, "system", "assistant"),
    "assistant": (None, "system", "user", "tool"),
    "tool": ("assistant", "tool"),
}


def validate_messages(messages: list[Message], *, for_training: bool, supports_tools: bool = True) -> None:
    """Raise DataError naming the first bad message.

    Training conversations end with an assistant turn; prompts (inference) end with a user or tool turn.
    A tool turn must follow an assistant turn with `tool_calls` (or another tool turn).
    """
    if not messages:
        raise DataError("messages: empty conversation")
    prev: str | None = None
    prev_calls = False
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise DataError(f"messages[{i}]: role {role!r} is not one of {', '.join(ROLES)}")
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            raise DataError(f"messages[{i}]: content must be a string, got {type(content).__name__}")
        if content is None and not msg.get("tool_calls"):
            raise DataError(f"messages[{i}]: content is missing")
        if role == "system":
            if i != 0:
                raise DataError(f"messages[{i}]: a system message is only allowed first")
        elif prev not in _MAY_FOLLOW[role] or (role == "tool" and prev == "assistant" and not prev_calls):
            what = "the start" if prev is None else f"'{prev}'"
            if role == "tool" and prev == "assistant":
                what = "'assistant' without tool_calls"
            raise DataError(f"messages[{i}]: role '{role}' follows {what}")
        if not supports_tools and (role == "tool" or msg.get("tool_calls")):
            raise DataError(f"messages[{i}]: this template cannot render tool calls or tool results")
        prev, prev_calls = role, bool(msg.get("tool_calls"))
    last = messages[-1]["role"]
    if for_training and last != "assistant":
        raise DataError(f"messages[{len(messages) - 1}]: a training conversation must end with an assistant turn")
    if not for_training and last not in ("user", "tool", "system"):
        raise DataError(f"messages[{len(messages) - 1}]: a prompt must end with a user or tool turn, not '{last}'")
