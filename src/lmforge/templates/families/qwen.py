r"""Qwen chat formats: ChatML with Qwen's tool conventions, as the released models' own templates render them.

* ``qwen2.5``: Qwen2.5 Instruct. Without a system message it writes "You are Qwen, created by Alibaba Cloud. You
  are a helpful assistant."; tool definitions join the system turn; tool calls are ``<tool_call>`` JSON blocks
  (arguments always as JSON, a string argument too); consecutive tool results share one user turn. ``qwen``,
  lmforge's older name for its own Qwen-like format, now selects this current release.
* ``qwen2``: the Qwen2 Instruct release: plain ChatML, every message as its own turn, with the
  default system "You are a helpful assistant."; no tools.
* ``qwen3``: Qwen3 (hybrid thinking). No default system. A reply's reasoning comes from ``reasoning_content`` or
  from a ``<think>...</think>`` prefix of its content; only the replies after the last user query keep a think
  block (the final one always, empty if it had no reasoning), earlier ones are written without it. The
  ``enable_thinking`` option (default true) set to false writes an empty think block after the generation prompt.
  An assistant message needs a string content (the real template fails on ``None``, also with tool calls).
"""

from __future__ import annotations

from lmforge.templates.families.chatml import CHATML_TURN
from lmforge.templates.families.fragments import TEXT_OF, jinja_set
from lmforge.templates.spec import TemplateSpec

_SPECIAL = ("<|im_start|>", "<|im_end|>", "<|endoftext|>")
_STOP = ("<|im_end|>", "<|endoftext|>")

# `tools_prompt(tools)`: the tool definitions both Qwen2.5 and Qwen3 write into the system turn.
_TOOLS_PROMPT = r"""{%- macro tools_prompt(tools) %}
{{- '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n'
    + 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}
{%- for tool in tools %}{{- '\n' + tool | tojson }}{%- endfor %}
{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within '
    + '<tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}'
    + '\n</tool_call>' }}
{%- endmacro %}
"""

# `tool_result(messages, i)`: the tool result messages[i]; consecutive ones share one user turn.
_TOOL_RESULT = r"""{%- macro tool_result(messages, i) %}
{%- if i == 0 or messages[i - 1].role != 'tool' %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\n<tool_response>\n' ~ messages[i].content ~ '\n</tool_response>' }}
{%- if i == messages | length - 1 or messages[i + 1].role != 'tool' %}{{- '<|im_end|>\n' }}{%- endif %}
{%- endmacro %}
"""

_GENERATION_PROMPT = r"""{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}
"""
# Qwen3's: with enable_thinking false, an empty think block tells the model to answer without reasoning.
_GENERATION_PROMPT_THINKING = r"""{%- if add_generation_prompt %}
{{- '<|im_start|>assistant\n' }}
{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\n\n</think>\n\n' }}{%- endif %}
{%- endif %}
"""

_QWEN25 = (
    TEXT_OF
    + CHATML_TURN
    + _TOOLS_PROMPT
    + _TOOL_RESULT
    + jinja_set(default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant.")
    + r"""{%- set has_system = messages[0].role == 'system' %}
{%- if tools %}
{{- '<|im_start|>system\n' ~ (messages[0].content if has_system else default_system) ~ '\n\n' }}
{{- tools_prompt(tools) + '<|im_end|>\n' }}
{%- else %}
{{- chatml_turn('system', text_of(messages[0]) if has_system else default_system) }}
{%- endif %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first)
      or (message.role == 'assistant' and not message.tool_calls) %}
{{- chatml_turn(message.role, text_of(message)) }}
{%- elif message.role == 'assistant' %}
{{- '<|im_start|>assistant' }}
{%- if message.content %}{{- '\n' + text_of(message) }}{%- endif %}
{%- for call in message.tool_calls %}
{%- set fn = call.function if call.function is defined else call %}
{{- '\n<tool_call>\n{"name": "' ~ fn.name ~ '", "arguments": ' ~ fn.arguments | tojson ~ '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{{- tool_result(messages, loop.index0) }}
{%- endif %}
{%- endfor %}
"""
    + _GENERATION_PROMPT
)

_QWEN2 = (
    TEXT_OF
    + CHATML_TURN
    + r"""{%- for message in messages %}
{%- if loop.first and message.role != 'system' %}
{{- chatml_turn('system', 'You are a helpful assistant.') }}
{%- endif %}
{{- chatml_turn(message.role, text_of(message)) }}
{%- endfor %}
"""
    + _GENERATION_PROMPT
)

# The last user query: the last user message that is not only a tool response; replies after it keep their
# think blocks. Without one, the last message counts as the query.
_QWEN3 = (
    TEXT_OF
    + CHATML_TURN
    + _TOOLS_PROMPT
    + _TOOL_RESULT
    + r"""{%- if tools %}
{{- '<|im_start|>system\n' + (text_of(messages[0]) + '\n\n' if messages[0].role == 'system' else '') }}
{{- tools_prompt(tools) + '<|im_end|>\n' }}
{%- elif messages[0].role == 'system' %}
{{- chatml_turn('system', text_of(messages[0])) }}
{%- endif %}
{%- set ns = namespace(last_query=messages | length - 1) %}
{%- for message in messages %}
{%- if message.role == 'user' and not (text_of(message).startswith('<tool_response>')
                                       and text_of(message).endswith('</tool_response>')) %}
{%- set ns.last_query = loop.index0 %}
{%- endif %}
{%- endfor %}
{%- for message in messages %}
{%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
{{- chatml_turn(message.role, text_of(message)) }}
{%- elif message.role == 'assistant' %}
{%- set content = text_of(message) %}
{%- set reasoning = '' %}
{%- if message.reasoning_content is defined and message.reasoning_content is not none %}
{%- set reasoning = message.reasoning_content %}
{%- elif '</think>' in content %}
{%- set reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
{%- set content = content.split('</think>')[-1].lstrip('\n') %}
{%- endif %}
{%- if loop.index0 > ns.last_query and (loop.last or reasoning) %}
{{- '<|im_start|>assistant\n<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
{%- else %}
{{- '<|im_start|>assistant\n' + content }}
{%- endif %}
{%- for call in message.tool_calls or [] %}
{%- set fn = call.function if call.function else call %}
{{- ('\n' if content or not loop.first else '') + '<tool_call>\n{"name": "' ~ fn.name ~ '", "arguments": ' }}
{{- (fn.arguments if fn.arguments is string else fn.arguments | tojson) + '}\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\n' }}
{%- elif message.role == 'tool' %}
{{- tool_result(messages, loop.index0) }}
{%- endif %}
{%- endfor %}
"""
    + _GENERATION_PROMPT_THINKING
)

QWEN25 = TemplateSpec(
    name="qwen2.5",
    aliases=("qwen",),
    models="Qwen2.5 / Qwen2.5-Coder Instruct",
    jinja=_QWEN25,
    special_tokens=_SPECIAL,
    stop_tokens=_STOP,
    eos_token="<|im_end|>",
    supports_tools=True,
)

QWEN2 = TemplateSpec(
    name="qwen2",
    models="Qwen2 Instruct",
    jinja=_QWEN2,
    special_tokens=_SPECIAL,
    stop_tokens=_STOP,
    eos_token="<|im_end|>",
)

QWEN3 = TemplateSpec(
    name="qwen3",
    models="Qwen3 hybrid-thinking models (2025-04 release, e.g. Qwen3-0.6B ... Qwen3-235B-A22B)",
    jinja=_QWEN3,
    special_tokens=_SPECIAL,
    stop_tokens=_STOP,
    eos_token="<|im_end|>",
    options={"enable_thinking": True},
    supports_tools=True,
)

SPECS = (QWEN25, QWEN2, QWEN3)
