r"""Mistral `[INST]` formats, one per release of Mistral's chat template (they differ in spaces, in where the
system text goes and in tools). All write BOS once and no generation prompt (a prompt ends with `[/INST]`).

* ``mistral-v0.1``: Mistral-7B-Instruct-v0.1 as released: `<s>[INST] user [/INST]reply</s> `; no system role.
* ``mistral-v0.2``: Mistral-7B-Instruct-v0.2 / Mixtral-8x7B-Instruct-v0.1 as released: the same without the
  space after `</s>`.
* ``mistral-v1``: Mistral's 2024 'v1' template (Mistral-7B-Instruct-v0.2 updated): `<s> [INST] user [/INST]
  reply</s>`; the system text opens the first user turn.
* ``mistral-v0.3``: Mistral-7B-Instruct-v0.3 as first released, with tools: `[AVAILABLE_TOOLS]` before the last
  user turn, `[TOOL_CALLS]`, `[TOOL_RESULTS]`. Like the real template, it writes no system message at all.
* ``mistral-v3``: Mistral's 'v3' template (the current Mistral-7B-Instruct-v0.3 one, Mistral-Large-Instruct-2407):
  `<s>[INST] user[/INST] reply</s>`; the system text joins the user turn only when that turn is the last
  message, i.e. in a generation prompt (a training rendering, which ends with a reply, has no system text, as
  with the real template); tool-call ids must be 9 characters. ``mistral``, lmforge's older name for its own
  Mistral-like format, now selects this current template.
"""

from __future__ import annotations

from lmforge.templates.families.fragments import ALTERNATE, SPLIT_SYSTEM, TEXT_OF, jinja_set
from lmforge.templates.spec import TemplateSpec

_V1_SPECIAL = ("<s>", "</s>")
_V3_SPECIAL = (
    *_V1_SPECIAL,
    "[INST]",
    "[/INST]",
    "[TOOL_CALLS]",
    "[AVAILABLE_TOOLS]",
    "[/AVAILABLE_TOOLS]",
    "[TOOL_RESULTS]",
    "[/TOOL_RESULTS]",
)
_ONLY_USER_AND_ASSISTANT = r"""{{- raise_exception('only user and assistant roles are supported, after an optional '
    ~ 'first system message; got ' ~ message.role) }}"""

# v0.1 / v0.2, after a prelude that sets `after_reply` (what follows each reply's EOS).
_LEGACY = (
    TEXT_OF
    + ALTERNATE
    + r"""{{- bos_token }}
{%- if messages and messages[0].role == 'system' %}
{{- raise_exception('this template has no system role') }}
{%- endif %}
{{- alternate(messages, 0) }}
{%- for message in messages %}
{%- if message.role == 'user' %}{{- '[INST] ' + text_of(message) + ' [/INST]' }}
{%- elif message.role == 'assistant' %}{{- text_of(message) + eos_token + after_reply }}
{%- else %}"""
    + _ONLY_USER_AND_ASSISTANT
    + r"""
{%- endif %}
{%- endfor %}
"""
)

_V1 = (
    TEXT_OF
    + ALTERNATE
    + SPLIT_SYSTEM
    + r"""{{- bos_token }}
{{- alternate(turns, 1 if system else 0) }}
{%- for message in turns %}
{%- if message.role == 'user' %}
{{- ' [INST] ' + (text_of(system) + '\n\n' if loop.first and system else '') + text_of(message) + ' [/INST]' }}
{%- elif message.role == 'assistant' %}
{{- ' ' + text_of(message) + eos_token }}
{%- else %}"""
    + _ONLY_USER_AND_ASSISTANT
    + r"""
{%- endif %}
{%- endfor %}
"""
)

# `available_tools(tools)`: the tool list as v0.3 and v3 write it, every field of each function but "return".
_AVAILABLE_TOOLS = r"""{%- macro available_tools(tools) %}
{{- '[' }}
{%- for tool in tools %}
{{- '{"type": "function", "function": {' }}
{%- for key, value in tool.function | items if key != 'return' %}
{{- '"' + key + '": ' + ('"' + value + '"' if value is string else value | tojson) + (', ' if not loop.last else '') }}
{%- endfor %}
{{- '}}' + (', ' if not loop.last else ']') }}
{%- endfor %}
{%- endmacro %}
"""

# The last user message gets the tool list; "last" compares message contents, as the real templates do.
_V03 = (
    TEXT_OF
    + _AVAILABLE_TOOLS
    + r"""{{- bos_token }}
{%- set user_messages = messages | selectattr('role', 'equalto', 'user') | list %}
{%- for message in messages %}
{%- if message.role == 'user' %}
{%- if tools and message == user_messages[-1] %}
{{- ' [AVAILABLE_TOOLS] ' + available_tools(tools) + ' [/AVAILABLE_TOOLS]' }}
{%- endif %}
{{- ' [INST] ' + text_of(message) + ' [/INST]' }}
{%- elif message.role == 'assistant' %}
{%- if message.tool_calls is defined and message.tool_calls | length > 0 %}
{{- ' [TOOL_CALLS] [' }}
{%- for call in message.tool_calls %}
{%- if call.id is not defined %}{{- raise_exception('a tool call needs an id') }}{%- endif %}
{{- {'name': call.function.name, 'arguments': call.function.arguments, 'id': call.id} | tojson }}
{{- ', ' if not loop.last else '' }}
{%- endfor %}
{{- '] ' + eos_token }}
{%- elif message.content is defined %}
{{- ' ' + text_of(message) + ' ' + eos_token }}
{%- endif %}
{%- elif message.role == 'tool' %}
{%- if message.tool_call_id is not string %}{{- raise_exception('a tool message needs a tool_call_id') }}{%- endif %}
{{- ' [TOOL_RESULTS] {"call_id": "' + message.tool_call_id + '", "content": ' + message.content | string }}
{{- '} [/TOOL_RESULTS] ' }}
{%- endif %}
{%- endfor %}
"""
)

_NINE_CHARACTER_ID = r"""{{- raise_exception('tool call ids must be alphanumeric strings of 9 characters') }}"""

# Tool calls and tool results stand outside the user/assistant alternation.
_V3 = (
    TEXT_OF
    + SPLIT_SYSTEM
    + _AVAILABLE_TOOLS
    + r"""{%- set tools = tools if tools is defined else none %}
{%- set user_messages = turns | selectattr('role', 'equalto', 'user') | list %}
{%- set ns = namespace(index=0) %}
{%- for message in turns %}
{%- set is_tool_turn = message.tool_calls is defined and message.tool_calls is not none %}
{%- if not (message.role in ['tool', 'tool_results'] or is_tool_turn) %}
{%- if (message.role == 'user') != (ns.index % 2 == 0) %}
{{- raise_exception('conversation roles must alternate user/assistant/user/assistant/... after the optional '
    ~ 'system message (tool calls and results aside); got ' ~ message.role) }}
{%- endif %}
{%- set ns.index = ns.index + 1 %}
{%- endif %}
{%- endfor %}
{{- bos_token }}
{%- for message in turns %}
{%- if message.role == 'user' %}
{%- if tools is not none and message == user_messages[-1] %}
{{- '[AVAILABLE_TOOLS] ' + available_tools(tools) + '[/AVAILABLE_TOOLS]' }}
{%- endif %}
{{- '[INST] ' + (text_of(system) + '\n\n' if loop.last and system else '') + text_of(message) + '[/INST]' }}
{%- elif message.tool_calls is defined and message.tool_calls is not none %}
{{- '[TOOL_CALLS] [' }}
{%- for call in message.tool_calls %}
{%- if call.id is not defined or call.id | length != 9 %}"""
    + _NINE_CHARACTER_ID
    + r"""{%- endif %}
{{- (call.function | tojson)[:-1] + ', "id": "' + call.id + '"}' + (', ' if not loop.last else ']' + eos_token) }}
{%- endfor %}
{%- elif message.role == 'assistant' %}
{{- ' ' + message.content | trim + eos_token }}
{%- elif message.role in ['tool', 'tool_results'] %}
{%- set result = message.content.content if message.content is defined and message.content.content is defined
                 else message.content %}
{%- if message.tool_call_id is not defined or message.tool_call_id | length != 9 %}"""
    + _NINE_CHARACTER_ID
    + r"""{%- endif %}
{{- '[TOOL_RESULTS] {"content": ' + result | string + ', "call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
{%- else %}"""
    + _ONLY_USER_AND_ASSISTANT
    + r"""
{%- endif %}
{%- endfor %}
"""
)

MISTRAL_V01 = TemplateSpec(
    name="mistral-v0.1",
    models="Mistral-7B-Instruct-v0.1 (original template)",
    jinja=jinja_set(after_reply=" ") + _LEGACY,
    special_tokens=_V1_SPECIAL,
    stop_tokens=("</s>",),
    bos_token="<s>",
    eos_token="</s>",
)

MISTRAL_V02 = TemplateSpec(
    name="mistral-v0.2",
    models="Mistral-7B-Instruct-v0.2 / Mixtral-8x7B-Instruct-v0.1 (original template)",
    jinja=jinja_set(after_reply="") + _LEGACY,
    special_tokens=_V1_SPECIAL,
    stop_tokens=("</s>",),
    bos_token="<s>",
    eos_token="</s>",
)

MISTRAL_V1 = TemplateSpec(
    name="mistral-v1",
    models="Mistral-7B-Instruct-v0.2 with Mistral's 2024 'v1' template (system prompt in the first user turn)",
    jinja=_V1,
    special_tokens=_V1_SPECIAL,
    stop_tokens=("</s>",),
    bos_token="<s>",
    eos_token="</s>",
)

MISTRAL_V03 = TemplateSpec(
    name="mistral-v0.3",
    models="Mistral-7B-Instruct-v0.3 (first template, with tools; drops system messages)",
    jinja=_V03,
    special_tokens=_V3_SPECIAL,
    stop_tokens=("</s>",),
    bos_token="<s>",
    eos_token="</s>",
    supports_tools=True,
)

MISTRAL_V3 = TemplateSpec(
    name="mistral-v3",
    aliases=("mistral",),
    models="Mistral-7B-Instruct-v0.3 (current template), Mistral-Large-Instruct-2407 and other 'v3' tokenizer models",
    jinja=_V3,
    special_tokens=_V3_SPECIAL,
    stop_tokens=("</s>",),
    bos_token="<s>",
    eos_token="</s>",
    supports_tools=True,
)

SPECS = (MISTRAL_V01, MISTRAL_V02, MISTRAL_V1, MISTRAL_V03, MISTRAL_V3)
