r"""DeepSeek chat formats.

* ``deepseek-llm`` (alias ``deepseek-v2``): DeepSeek-LLM Chat and DeepSeek-V2 Chat: BOS, the system text plus a
  blank line, `User: text\n\n`, `Assistant: reply<｜end▁of▁sentence｜>`; the generation prompt is `Assistant:`.
* ``deepseek-v3`` (alias ``deepseek``): DeepSeek-V3: BOS, every system text (joined by blank lines) first, then
  `<｜User｜>text` and `<｜Assistant｜>reply<｜end▁of▁sentence｜>`. Tool calls (an assistant message with
  ``content: None``) and tool outputs render as the real template does, including its flags that never reset
  (only the first call of a conversation opens `<｜tool▁calls▁begin｜>`, and a lone call is not closed), so tools
  are not offered for training (`supports_tools` is false) and the `tools` definitions are not rendered.
"""

from __future__ import annotations

from lmforge.templates.families.fragments import TEXT_OF
from lmforge.templates.spec import TemplateSpec

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

_LLM = (
    TEXT_OF
    + r"""{{- bos_token }}
{%- for message in messages %}
{%- if message.role == 'user' %}{{- 'User: ' + text_of(message) + '\n\n' }}
{%- elif message.role == 'assistant' %}{{- 'Assistant: ' + text_of(message) + eos_token }}
{%- elif message.role == 'system' %}{{- text_of(message) + '\n\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- 'Assistant:' }}{%- endif %}
"""
)

_V3 = (
    TEXT_OF
    + r"""{%- macro tool_call(call) %}
{%- if call.function.arguments is not string %}
{{- raise_exception('tool-call arguments must be a JSON string here (the template writes them as they are)') }}
{%- endif %}
{{- '<｜tool▁call▁begin｜>' + call.type + '<｜tool▁sep｜>' + call.function.name + '\n```json\n'
    + call.function.arguments + '\n```<｜tool▁call▁end｜>' }}
{%- endmacro %}
{%- set ns = namespace(system='', calls_opened=false, in_outputs=false, outputs_opened=false) %}
{%- for message in messages if message.role == 'system' %}
{%- set ns.system = ns.system + ('' if loop.first else '\n\n') + text_of(message) %}
{%- endfor %}
{{- bos_token + ns.system }}
{%- for message in messages %}
{%- if message.role == 'user' %}
{%- set ns.in_outputs = false %}
{{- '<｜User｜>' + text_of(message) }}
{%- elif message.role == 'assistant' and message.content is none %}
{%- set ns.in_outputs = false %}
{%- for call in message.tool_calls %}
{%- if not ns.calls_opened %}
{{- '<｜Assistant｜><｜tool▁calls▁begin｜>' + tool_call(call) }}
{%- set ns.calls_opened = true %}
{%- else %}
{{- '\n' + tool_call(call) + '<｜tool▁calls▁end｜><｜end▁of▁sentence｜>' }}
{%- endif %}
{%- endfor %}
{%- elif message.role == 'assistant' %}
{{- ('<｜tool▁outputs▁end｜>' if ns.in_outputs else '<｜Assistant｜>') + text_of(message) + '<｜end▁of▁sentence｜>' }}
{%- set ns.in_outputs = false %}
{%- elif message.role == 'tool' %}
{%- set ns.in_outputs = true %}
{{- ('\n' if ns.outputs_opened else '<｜tool▁outputs▁begin｜>') }}
{{- '<｜tool▁output▁begin｜>' + text_of(message) + '<｜tool▁output▁end｜>' }}
{%- set ns.outputs_opened = true %}
{%- endif %}
{%- endfor %}
{%- if ns.in_outputs %}{{- '<｜tool▁outputs▁end｜>' }}
{%- elif add_generation_prompt %}{{- '<｜Assistant｜>' }}
{%- endif %}
"""
)

DEEPSEEK_LLM = TemplateSpec(
    name="deepseek-llm",
    aliases=("deepseek-v2",),
    models="DeepSeek-LLM 7B/67B Chat, DeepSeek-V2 / V2-Lite Chat",
    jinja=_LLM,
    special_tokens=(BOS, EOS),
    stop_tokens=(EOS,),
    bos_token=BOS,
    eos_token=EOS,
)

DEEPSEEK_V3 = TemplateSpec(
    name="deepseek-v3",
    aliases=("deepseek",),
    models="DeepSeek-V3",
    jinja=_V3,
    special_tokens=(
        BOS,
        EOS,
        "<｜User｜>",
        "<｜Assistant｜>",
        "<｜tool▁calls▁begin｜>",
        "<｜tool▁calls▁end｜>",
        "<｜tool▁call▁begin｜>",
        "<｜tool▁call▁end｜>",
        "<｜tool▁sep｜>",
        "<｜tool▁outputs▁begin｜>",
        "<｜tool▁outputs▁end｜>",
        "<｜tool▁output▁begin｜>",
        "<｜tool▁output▁end｜>",
    ),
    stop_tokens=(EOS,),
    bos_token=BOS,
    eos_token=EOS,
)

SPECS = (DEEPSEEK_LLM, DEEPSEEK_V3)
