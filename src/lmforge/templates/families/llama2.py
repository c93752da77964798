"""Llama 2 chat format: each exchange is `<s>[INST] ... [/INST] reply </s>`; the system text sits in `<<SYS>>`."""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

_JINJA = r"""{%- set has_system = messages and messages[0].role == 'system' %}
{%- set ns = namespace(system=messages[0].content | trim if has_system else '') %}
{%- for message in messages %}
{%- if message.role == 'user' %}
{{- '<s>[INST] ' + ('<<SYS>>\n' + ns.system + '\n<</SYS>>\n\n' if ns.system else '') }}
{{- message.content | trim + ' [/INST]' }}
{%- set ns.system = '' %}
{%- elif message.role == 'assistant' %}
{%- if ns.system %}{{- raise_exception('the system prompt needs a user turn after it') }}{%- endif %}
{{- ' ' + (message.content or '') | trim + ' </s>' }}
{%- endif %}
{%- endfor %}
"""

LLAMA2 = FormatTemplate(
    name="llama2",
    user="<s>[INST] {content} [/INST]",
    system_merge="<<SYS>>\n{system}\n<</SYS>>\n\n{content}",
    generation_prompt="",
    assistant=" {content} </s>",
    trim=True,
    stop_tokens=("</s>",),
    special_tokens=("<s>", "</s>"),
    bos_token="<s>",
    eos_token="</s>",
    jinja_source=_JINJA,
)
