"""Llama 2 Chat: each exchange is `<s>[INST] ... [/INST] reply </s>`; the system text opens the first user turn in
`<<SYS>>` tags. Turns must alternate user/assistant after the optional system message; texts are stripped. The
generation prompt is the last `[/INST]` itself.
"""

from __future__ import annotations

from lmforge.templates.families.fragments import ALTERNATE, SPLIT_SYSTEM, TEXT_OF
from lmforge.templates.spec import TemplateSpec

_JINJA = (
    TEXT_OF
    + ALTERNATE
    + SPLIT_SYSTEM
    + r"""{{- alternate(turns, 1 if system else 0) }}
{%- for message in turns %}
{%- if message.role == 'user' %}
{%- set head = '<<SYS>>\n' + text_of(system) + '\n<</SYS>>\n\n' if loop.first and system else '' %}
{{- bos_token + '[INST] ' + (head + text_of(message)).strip() + ' [/INST]' }}
{%- elif message.role == 'assistant' %}
{{- ' ' + text_of(message).strip() + ' ' + eos_token }}
{%- endif %}
{%- endfor %}
"""
)

LLAMA2 = TemplateSpec(
    name="llama2",
    models="Llama-2 Chat",
    jinja=_JINJA,
    special_tokens=("<s>", "</s>"),
    stop_tokens=("</s>",),
    bos_token="<s>",
    eos_token="</s>",
)

SPECS = (LLAMA2,)
