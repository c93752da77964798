r"""Llama 3 chat formats: `<|start_header_id|>role<|end_header_id|>\n\n text <|eot_id|>` turns, texts trimmed.

* ``llama3``: the original Llama-3 Instruct release. Every message is a turn, and the assistant header is always
  appended, generation prompt or not (so a training rendering ends with an empty assistant header).
* ``llama3.1`` (also Llama-3.3): a system turn always comes first, with "Cutting Knowledge Date: December 2023"
  and "Today Date: {date_string}" (option, default "26 Jul 2024") before the system text. With ``tools`` the
  system turn starts with "Environment: ipython" and the tool definitions open the first user turn
  (option ``tools_in_user_message``, default true; false puts them into the system turn). An assistant message
  with ``tool_calls`` becomes one ``{"name": ..., "parameters": ...}`` JSON call (one call per message); tool
  results are ``ipython`` turns holding the content as JSON. Passing ``builtin_tools`` (e.g. ``["brave_search",
  "wolfram_alpha"]``) lists them in the system turn, writes calls to them as ``<|python_tag|>name.call(...)``
  and ends every tool-call turn with ``<|eom_id|>``.
* ``llama3.2``: the 3.1 format without builtin tools; like the real template it dates the system turn today
  when no ``date_string`` is given (so prompts equal `apply_chat_template`'s); set
  ``data.template_options: {date_string: ...}`` for renderings that do not change from day to day.
"""

from __future__ import annotations

from lmforge.templates.spec import TemplateSpec

_SPECIAL = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")
_SPECIAL_TOOLS = (*_SPECIAL, "<|eom_id|>", "<|python_tag|>")

_HEADER = r"""{%- macro header(role) %}{{- '<|start_header_id|>' + role + '<|end_header_id|>\n\n' }}{%- endmacro %}
"""

_LLAMA3 = (
    _HEADER
    + r"""{%- for message in messages %}
{{- (bos_token if loop.first else '') + header(message.role) + message.content | trim + '<|eot_id|>' }}
{%- endfor %}
{{- header('assistant') }}
"""
)

# Shared by 3.1 and 3.2, after a prelude that sets `has_builtin` (whether `builtin_tools` are given) and `date`.
_LLAMA31_BODY = (
    _HEADER
    + r"""{%- macro tool_definitions(tools) %}
{{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.'
    + 'Do not use variables.\n\n' }}
{%- for tool in tools %}{{- tool | tojson(indent=4) + '\n\n' }}{%- endfor %}
{%- endmacro %}
{{- bos_token }}
{%- set tools = custom_tools if custom_tools is defined else (tools if tools is defined else none) %}
{%- set tools_in_user_message = tools_in_user_message if tools_in_user_message is defined else true %}
{%- if messages[0].role == 'system' %}
{%- set system_text = messages[0].content | trim %}
{%- set messages = messages[1:] %}
{%- else %}
{%- set system_text = '' %}
{%- endif %}
{{- header('system') }}
{%- if has_builtin or tools is not none %}{{- 'Environment: ipython\n' }}{%- endif %}
{%- if has_builtin %}
{{- 'Tools: ' + builtin_tools | reject('equalto', 'code_interpreter') | join(', ') + '\n\n' }}
{%- endif %}
{{- 'Cutting Knowledge Date: December 2023\nToday Date: ' + date + '\n\n' }}
{%- if tools is not none and not tools_in_user_message %}
{{- 'You have access to the following functions. To call a function, please respond with JSON for a function '
    + 'call.' + tool_definitions(tools) }}
{%- endif %}
{{- system_text + '<|eot_id|>' }}
{%- if tools_in_user_message and tools is not none %}
{%- if messages | length == 0 %}
{{- raise_exception('the tool definitions go into the first message after the system message, and there is none') }}
{%- endif %}
{{- header('user') + 'Given the following functions, please respond with a JSON for a function call with its '
    + 'proper arguments that best answers the given prompt.\n\n' + tool_definitions(tools) }}
{{- messages[0].content | trim + '<|eot_id|>' }}
{%- set messages = messages[1:] %}
{%- endif %}
{%- for message in messages %}
{%- if 'tool_calls' in message %}
{%- if message.tool_calls | length != 1 %}
{{- raise_exception('an assistant message may hold only one tool call (Llama 3.1 makes one call at a time)') }}
{%- endif %}
{%- set call = message.tool_calls[0].function %}
{{- header('assistant') }}
{%- if has_builtin and call.name in builtin_tools %}
{{- '<|python_tag|>' + call.name + '.call(' }}
{%- if call.arguments is not mapping %}
{{- raise_exception('builtin tool-call arguments must be an object') }}
{%- endif %}
{%- for name, value in call.arguments | items %}
{%- if value is not string %}{{- raise_exception('builtin tool-call argument values must be strings') }}{%- endif %}
{{- name + '="' + value + '"' + (', ' if not loop.last else '') }}
{%- endfor %}
{{- ')' }}
{%- else %}
{{- '{"name": "' + call.name + '", "parameters": ' + call.arguments | tojson + '}' }}
{%- endif %}
{{- '<|eom_id|>' if has_builtin else '<|eot_id|>' }}
{%- elif message.role in ['tool', 'ipython'] %}
{%- if message.content is not defined %}{{- raise_exception('a tool message needs a content') }}{%- endif %}
{{- header('ipython') }}
{{- message.content | tojson if message.content is mapping or message.content is iterable else message.content }}
{{- '<|eot_id|>' }}
{%- else %}
{{- header(message.role) + message.content | trim + '<|eot_id|>' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- header('assistant') }}{%- endif %}
"""
)

_LLAMA31 = (
    r"""{%- set has_builtin = builtin_tools is defined %}
{%- set date = date_string if date_string is defined else '26 Jul 2024' %}
"""
    + _LLAMA31_BODY
)

_LLAMA32 = (
    r"""{%- set has_builtin = false %}
{%- if date_string is defined %}{%- set date = date_string %}
{%- elif strftime_now is defined %}{%- set date = strftime_now('%d %b %Y') %}
{%- else %}{%- set date = '26 Jul 2024' %}
{%- endif %}
"""
    + _LLAMA31_BODY
)

LLAMA3 = TemplateSpec(
    name="llama3",
    models="Llama-3 Instruct (original 2024-04 release: Meta-Llama-3-8B/70B-Instruct)",
    jinja=_LLAMA3,
    special_tokens=_SPECIAL,
    stop_tokens=("<|eot_id|>", "<|end_of_text|>"),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
)

LLAMA31 = TemplateSpec(
    name="llama3.1",
    aliases=("llama3.3",),
    models="Llama-3.1 Instruct (8B/70B/405B), Llama-3.3-70B-Instruct",
    jinja=_LLAMA31,
    special_tokens=_SPECIAL_TOOLS,
    stop_tokens=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
    options={"date_string": "26 Jul 2024", "tools_in_user_message": True},
    supports_tools=True,
)

LLAMA32 = TemplateSpec(
    name="llama3.2",
    models="Llama-3.2 Instruct text models (1B/3B)",
    jinja=_LLAMA32,
    special_tokens=_SPECIAL_TOOLS,
    stop_tokens=("<|eot_id|>", "<|eom_id|>", "<|end_of_text|>"),
    bos_token="<|begin_of_text|>",
    eos_token="<|eot_id|>",
    options={"tools_in_user_message": True},
    supports_tools=True,
)

SPECS = (LLAMA3, LLAMA31, LLAMA32)
