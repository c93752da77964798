"""Jinja pieces shared by several families' templates, and the helper that sets a template's parameters.

Real chat templates fail on some conversations (roles out of order, a missing content) by raising or by a type
error; ours fail at the same places with `raise_exception` and a message naming the rule, so a user reads why.
"""

from __future__ import annotations

import json

# `text_of(message)`: the message's content where a real template joins it with `+`, which fails on None, a list
# or a missing content; ours fails there too, saying so.
TEXT_OF = r"""{%- macro text_of(message) %}
{%- if message.content is string %}{{- message.content }}
{%- else %}{{- raise_exception('a ' ~ message.role ~ ' message needs a text content here, got: ' ~ message.content) }}
{%- endif %}
{%- endmacro %}
"""

# `alternate(turns, offset)`: the user/assistant/user/... rule of the Llama-2, Mistral and Gemma templates;
# `offset` is the index of turns[0] in messages (1 after a leading system message).
ALTERNATE = r"""{%- macro alternate(turns, offset) %}
{%- for message in turns %}
{%- if (message.role == 'user') != (loop.index0 % 2 == 0) %}
{{- raise_exception('conversation roles must alternate user/assistant/user/assistant/... after the optional '
    ~ 'system message; messages[' ~ (loop.index0 + offset) ~ '] is ' ~ message.role) }}
{%- endif %}
{%- endfor %}
{%- endmacro %}
"""

# `turns` and `system`: the messages after a leading system message, and that message (none without one).
SPLIT_SYSTEM = r"""{%- if messages[0].role == 'system' %}
{%- set system = messages[0] %}
{%- set turns = messages[1:] %}
{%- else %}
{%- set system = none %}
{%- set turns = messages %}
{%- endif %}
"""


def jinja_set(**values: str | bool) -> str:
    """`{% set name = value %}` lines: the parameters of a Jinja body shared by related templates."""
    return "".join(
        f"{{%- set {name} = {json.dumps(value, ensure_ascii=False)} %}}\n" for name, value in values.items()
    )
