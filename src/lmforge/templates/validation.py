"""Conversation checks shared by every template (QUALITY A6): reject what no template can render meaningfully.

Role order is the template's own business: the real templates accept or refuse orders as their models were
trained (Mistral requires alternation, Qwen does not), and `render_chat` reports their refusals.
"""

from __future__ import annotations

from typing import Any

from lmforge.utils.errors import DataError

ROLES = ("system", "user", "assistant", "tool")


def validate_messages(messages: list[dict[str, Any]], *, for_training: bool) -> None:
    """Raise DataError naming the first bad message.

    Training conversations end with an assistant turn; what a prompt may end with is the template's business.
    """
    if not messages:
        raise DataError("messages: empty conversation")
    for i, msg in enumerate(messages):
        role = msg.get("role") if isinstance(msg, dict) else None
        if role not in ROLES:
            raise DataError(f"messages[{i}]: role {role!r} is not one of {', '.join(ROLES)}")
        content = msg.get("content")
        if content is not None and not isinstance(content, str):
            raise DataError(f"messages[{i}]: content must be a string, got {type(content).__name__}")
        if content is None and not msg.get("tool_calls"):
            raise DataError(f"messages[{i}]: content is missing")
    last = messages[-1]["role"]
    if for_training and last != "assistant":
        raise DataError(f"messages[{len(messages) - 1}]: a training conversation must end with an assistant turn")
