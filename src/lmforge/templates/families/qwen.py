r"""Qwen chat formats: ChatML with Qwen's tool conventions.

* ``qwen`` (Qwen2 / Qwen2.5): a default system prompt when the conversation has none.
* ``qwen3``: no default system prompt; assistant replies after the last user message carry a think block
  (``<think>\n...\n</think>\n\n``), empty for a plain final reply; earlier replies keep only their answer text.
  Reasoning comes from ``reasoning_content`` or from a ``<think>...</think>`` prefix in the content. The think
  block is part of the trained response, as the model writes it.
"""

from __future__ import annotations

import dataclasses

from lmforge.templates.base import Message
from lmforge.templates.encoding import Piece
from lmforge.templates.families.chatml import CHATML, chatml_jinja
from lmforge.templates.format import FormatTemplate

QWEN_SYSTEM = "You are a helpful assistant."

QWEN = dataclasses.replace(
    CHATML,
    name="qwen",
    default_system=QWEN_SYSTEM,
    special_tokens=("<|im_start|>", "<|im_end|>", "<|endoftext|>"),
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
    jinja_source=chatml_jinja(QWEN_SYSTEM),
)

_THINK_REPLY = r"""{%- set reasoning = message.reasoning_content if message.reasoning_content is string else '' %}
{%- if not reasoning and '</think>' in content %}
{%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
{%- set content = content.split('</think>')[-1].lstrip('\n') %}
{%- endif %}
{%- if loop.index0 > ns.last_user and (loop.last or reasoning) %}
{{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
{%- else %}
{{- '<|im_start|>assistant\n' + content }}
{%- endif %}"""


def split_reasoning(msg: Message) -> tuple[str, str]:
    """(reasoning, answer) of an assistant message."""
    content = msg.get("content") or ""
    reasoning = msg.get("reasoning_content") or ""
    if not reasoning and "</think>" in content:
        before, _, content = content.partition("</think>")
        reasoning = before.rstrip("\n").split("<think>")[-1].lstrip("\n")
        content = content.split("</think>")[-1].lstrip("\n")
    return reasoning, content


@dataclasses.dataclass(frozen=True, kw_only=True)
class Qwen3Template(FormatTemplate):
    """ChatML plus Qwen3's think blocks on the replies that follow the last user message."""

    def reply_pieces(self, msg: Message, index: int, messages: list[Message]) -> tuple[list[Piece], bool]:
        reasoning, content = split_reasoning(msg)
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
        if index > last_user and (index == len(messages) - 1 or reasoning):
            content = content.lstrip("\n")
            think = [("<think>\n", False), (reasoning.strip("\n"), True), ("\n</think>\n\n", False)]
            return [*think, (content, True)], bool(content)
        return ([(content, True)] if content else []), bool(content)


QWEN3 = Qwen3Template(
    **{f.name: getattr(QWEN, f.name) for f in dataclasses.fields(QWEN)}
    | {"name": "qwen3", "default_system": "", "jinja_source": chatml_jinja("", _THINK_REPLY)}
)
