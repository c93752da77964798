r"""ChatML (`<|im_start|>role\n ... <|im_end|>\n`), lmforge's own generic format with tool calls.

No real model template to match. A tool call is written as ``<tool_call>\n{"name": ..., "arguments": {...}}
\n</tool_call>`` after the reply text; consecutive tool results share one user turn, each in `<tool_response>`
tags; the tool definitions go into the system turn, one JSON object per line.
"""

from __future__ import annotations

from lmforge.templates.spec import TemplateSpec

# `chatml_turn(role, text)`: one ChatML turn (also Qwen2's whole format).
CHATML_TURN = r"""{%- macro chatml_turn(role, text) %}
{{- '<|im_start|>' + role + '\n' + text + '<|im_end|>\n' }}
{%- endmacro %}
"""

_JINJA = (
    CHATML_TURN
    + r"""{%- set has_system = messages and messages[0].role == 'system' %}
{%- set system = (messages[0].content or '') if has_system else '' %}
{%- if has_system or tools %}
{{- '<|im_start|>system\n' + system }}
{%- if tools %}
{{- ('\n\n' if system else '') + '# Tools\n\nYou may call the functions described below, one JSON schema per line:\n'
    + '<tools>\n' }}
{%- for tool in tools %}{{- ('\n' if not loop.first else '') + tool | tojson }}{%- endfor %}
{{- '\n</tools>\n\nTo call a function, answer with a JSON object inside <tool_call></tool_call> tags:\n'
    + '<tool_call>\n{"name": <function name>, "arguments": <arguments object>}\n</tool_call>' }}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- endif %}
{%- for message in (messages[1:] if has_system else messages) %}
{%- if message.role == 'user' %}
{{- chatml_turn('user', message.content or '') }}
{%- elif message.role == 'assistant' %}
{%- set content = message.content or '' %}
{{- '<|im_start|>assistant\n' + content }}
{%- for call in message.tool_calls or [] %}
{%- set fn = call.function if call.function is defined else call %}
{{- ('\n' if content or not loop.first else '') + '<tool_call>\n{"name": "' + fn.name + '", "arguments": ' }}
{{- (fn.arguments if fn.arguments is string else fn.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{%- if loop.first or loop.previtem.role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' + (message.content or '') + '\n</tool_response>' }}
{%- if loop.last or loop.nextitem.role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
{%- elif message.role == 'system' %}
{{- raise_exception('a system message is only allowed first') }}
{%- else %}
{{- raise_exception('unknown role: ' ~ message.role) }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""
)

CHATML = TemplateSpec(
    name="chatml",
    models="any model (ChatML turns with tool calls; e.g. models trained from scratch with lmforge)",
    jinja=_JINJA,
    special_tokens=("<|im_start|>", "<|im_end|>"),
    stop_tokens=("<|im_end|>",),
    eos_token="<|im_end|>",
    supports_tools=True,
)

SPECS = (CHATML,)
