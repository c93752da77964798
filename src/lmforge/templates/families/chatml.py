r"""ChatML (`<|im_start|>role ... <|im_end|>`), with Qwen-style tool calls and tool results.

A tool call is written as ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``; consecutive tool
results are grouped in one user turn, each wrapped in ``<tool_response>`` tags.
"""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

TOOLS_SYSTEM = (
    "# Tools\n\nYou may call the functions described below, one JSON schema per line:\n<tools>\n{tools}\n</tools>\n\n"
    "To call a function, answer with a JSON object inside <tool_call></tool_call> tags:\n"
    '<tool_call>\n{"name": <function name>, "arguments": <arguments object>}\n</tool_call>'
)
TOOL_CALL = '<tool_call>\n{"name": "{name}", "arguments": {arguments}}\n</tool_call>'

_JINJA = r"""{%- set has_system = messages and messages[0].role == 'system' %}
{%- set system = messages[0].content if has_system else DEFAULT %}
{%- if has_system or system or tools %}
{{- '<|im_start|>system\n' + system }}
{%- if tools %}
{{- '\n\n' if system else '' }}{{- 'TOOLS_HEAD' }}
{%- for tool in tools %}{{- '\n' if not loop.first else '' }}{{- tool | tojson }}{%- endfor %}
{{- 'TOOLS_TAIL' }}
{%- endif %}
{{- '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(last_user=-1) %}
{%- for message in messages %}
{%- if message.role == 'user' %}{%- set ns.last_user = loop.index0 %}{%- endif %}
{%- endfor %}
{%- for message in messages %}
{%- if message.role == 'user' %}
{{- '<|im_start|>user\n' + message.content + '<|im_end|>\n' }}
{%- elif message.role == 'assistant' %}
{%- set content = message.content or '' %}
REPLY
{%- for call in message.tool_calls or [] %}
{%- set fn = call.function if call.function is defined else call %}
{{- '\n' if content or not loop.first else '' }}
{{- '<tool_call>\n{"name": "' + fn.name + '", "arguments": ' }}
{{- (fn.arguments if fn.arguments is string else fn.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{{- '<|im_start|>user' if loop.first or loop.previtem.role != 'tool' else '' }}
{{- '\n<tool_response>\n' + message.content + '\n</tool_response>' }}
{{- '<|im_end|>\n' if loop.last or loop.nextitem.role != 'tool' else '' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""
_PLAIN_REPLY = r"{{- '<|im_start|>assistant\n' + content }}"


def chatml_jinja(default_system: str = "", reply: str = _PLAIN_REPLY) -> str:
    """Our Jinja for the ChatML family; `reply` renders an assistant message's `content`."""
    head, tail = TOOLS_SYSTEM.split("{tools}")
    return (
        _JINJA.replace("DEFAULT", repr(default_system))
        .replace("TOOLS_HEAD", head.replace("\n", r"\n"))
        .replace("TOOLS_TAIL", tail.replace("\n", r"\n"))
        .replace("REPLY", reply)
    )


CHATML = FormatTemplate(
    name="chatml",
    system="<|im_start|>system\n{content}<|im_end|>\n",
    user="<|im_start|>user\n{content}<|im_end|>\n",
    generation_prompt="<|im_start|>assistant\n",
    assistant="{content}<|im_end|>\n",
    tool="\n<tool_response>\n{content}\n</tool_response>",
    tool_group=("<|im_start|>user", "<|im_end|>\n"),
    tool_call=TOOL_CALL,
    tools_system=TOOLS_SYSTEM,
    stop_tokens=("<|im_end|>",),
    special_tokens=("<|im_start|>", "<|im_end|>"),
    eos_token="<|im_end|>",
    jinja_source=chatml_jinja(),
)
