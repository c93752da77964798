"""Where each assistant reply lies in a rendered conversation, for any Jinja chat template.

The conversation is rendered once as a whole. To find assistant message k in that text, it is rendered again
with message k's content (and its tool-call names) replaced by a private-use sentinel: the two renderings share
a prefix and a suffix, and what differs is message k as the template wrote it, whatever the template did to it
(trim, split off a think block, move a system prompt). This works for templates that rewrite history (Qwen3),
move messages (Mistral v3) or always append a header (Llama-3), which prefix renderings cannot handle.

The trained span of a reply then widens to what the model writes at inference:
  * back to the end of the generation prompt (the text `add_generation_prompt` appends, e.g. Qwen3's
    ``<|im_start|>assistant\\n`` before a ``<think>`` block, or DeepSeek's ``Assistant:`` before " reply");
  * forward through the first stop token (end-of-turn / EOS) that follows before the next turn starts
    (``<|im_end|>``, Llama-2's `` </s>``, GLM-4's next ``<|user|>``).
A final reply that the format ends with no token at all (GLM-4) is marked `needs_stop`: the encoder appends the
stop token, so every model learns to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lmforge.templates.jinja import Message
from lmforge.utils.errors import DataError

_SENTINEL = "\ue000"  # private use: never in real text, never stripped or split by a template
Render = Callable[[list[Message]], str]


@dataclass(frozen=True)
class ReplySpan:
    """Characters [start, end) of one assistant reply, as trained (reply text plus its stop token)."""

    message_index: int
    start: int
    end: int
    needs_stop: bool = False


def _with_sentinel(messages: list[Message], k: int) -> list[Message]:
    msg = dict(messages[k])
    if isinstance(msg.get("content"), str) and msg["content"]:
        msg["content"] = _SENTINEL
    calls = msg.get("tool_calls")
    if calls:
        msg["tool_calls"] = [_call_with_sentinel(call) for call in calls]
    return [*messages[:k], msg, *messages[k + 1 :]]


def _call_with_sentinel(call: Any) -> Any:
    if not isinstance(call, dict):
        return call
    fn = call.get("function")
    if isinstance(fn, dict):
        return {**call, "function": {**fn, "name": _SENTINEL}}
    return {**call, "name": _SENTINEL} if "name" in call else call


def message_region(
    text: str, render: Render, messages: list[Message], k: int, floor: int = 0
) -> tuple[int, int] | None:
    """Characters of `text` (the rendering of `messages`) that change with message k's content; None if none.

    A reply with tool calls starts where the template's tool-call markup starts (Mistral's ``[TOOL_CALLS]``):
    where the rendering departs from one with a plain reply in its place, or (for templates that refuse that
    order of roles) from one without the call and its tool results.
    """
    region = _diff(text, render(_with_sentinel(messages, k)))
    if region is None or not messages[k].get("tool_calls"):
        return region
    after = k + 1
    while after < len(messages) and messages[after].get("role") == "tool":
        after += 1
    variants = (
        [*messages[:k], {"role": "assistant", "content": _SENTINEL}, *messages[k + 1 :]],
        [*messages[:k], *messages[after:]],
    )
    for variant in variants:
        try:
            other = _diff(text, render(variant)) if variant else None
        except DataError:
            continue
        if other is not None and floor <= other[0] < region[0]:
            return other[0], region[1]
    return region


def _diff(text: str, marked: str) -> tuple[int, int] | None:
    """The characters of `text` between the longest common prefix and suffix of `text` and `marked`."""
    if marked == text:
        return None
    start = _common_prefix(text, marked)
    end = len(text) - _common_prefix(text[start:][::-1], marked[start:][::-1])
    return start, end


def _common_prefix(a: str, b: str) -> int:
    """Length of the common prefix, by bisection on slice comparisons (C speed, not a Python loop per char)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _verbatim_region(text: str, messages: list[Message], k: int, floor: int, header: str) -> tuple[int, int] | None:
    """Message k's content where it stands verbatim in `text`: only when it occurs there exactly once, after the
    previous reply and a generation prompt, and inside no other message. Then the sentinel rendering would find
    the same characters, one rendering sooner; otherwise None (and the caller renders)."""
    content = messages[k].get("content")
    if not isinstance(content, str) or not content or content.strip() != content or messages[k].get("tool_calls"):
        return None  # (templates trim, so surrounding whitespace may be the template's, not the reply's)
    if text.count(content) != 1:
        return None
    pos = text.find(content)
    if pos < floor or (header and text.rfind(header, floor, pos) < 0):
        return None
    if any(j != k and content in str(m.get("content") or "") for j, m in enumerate(messages)):
        return None
    return pos, pos + len(content)


def locate_replies(
    text: str, render: Render, messages: list[Message], header: str, stops: tuple[str, ...], shortcut: bool = True
) -> list[ReplySpan]:
    """The trained span of every assistant message in `text`, in order; a DataError names one that is lost.

    `shortcut`: take a reply found verbatim and unambiguously in `text` without the sentinel rendering."""
    spans: list[ReplySpan] = []
    floor = 0  # a reply never starts inside the previous one
    for k, msg in enumerate(messages):
        if msg.get("role") != "assistant":
            continue
        quick = _verbatim_region(text, messages, k, floor, header) if shortcut else None
        region = quick or message_region(text, render, messages, k, floor)
        if region is None:
            if msg.get("content") or msg.get("tool_calls"):
                raise DataError(
                    f"messages[{k}]: the chat template does not render this assistant message, so it cannot be trained"
                )
            continue  # an empty reply the template leaves out (GLM-4): nothing to train
        start, end = region
        if start < floor:
            raise DataError(
                f"messages[{k}]: the chat template renders this reply before the previous one ends, "
                "so its tokens cannot be told apart"
            )
        start = _after_header(text, floor, start, header)
        end, needs_stop = _through_stop(text, end, header, stops)
        spans.append(ReplySpan(k, start, end, needs_stop))
        floor = end
    return spans


def _after_header(text: str, floor: int, start: int, header: str) -> int:
    """Move `start` back to where the generation prompt ends, when that prompt precedes it in this turn."""
    if not header:
        return start
    found = text.rfind(header, floor, start)
    if found < 0:
        return start
    return found + len(header)


def _through_stop(text: str, end: int, header: str, stops: tuple[str, ...]) -> tuple[int, bool]:
    """Move `end` past the first stop token after the reply, unless a new assistant turn starts first."""
    best = -1
    best_stop = ""
    for stop in stops:
        pos = text.find(stop, end)
        if pos >= 0 and (best < 0 or pos < best):
            best, best_stop = pos, stop
    if best >= 0 and (not header or text.find(header, end, best) < 0):
        return best + len(best_stop), False
    return end, not text[end:].strip()
