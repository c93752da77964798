"""Mistral `[INST]` format: BOS once, the system text joins the first user turn, `</s>` closes each reply."""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

_JINJA = r"""{{- '<s>' }}
{%- set has_system = messages and messages[0].role == 'system' %}
{%- set ns = namespace(system=messages[0].content if has_system else '') %}
{%- for message in messages %}
{%- if message.role == 'user' %}
{{- '[INST] ' + (ns.system + '\n\n' if ns.system else '') + message.content + '[/INST]' }}
{%- set ns.system = '' %}
{%- elif message.role == 'assistant' %}
{%- if ns.system %}{{- raise_exception('the system prompt needs a user turn after it') }}{%- endif %}
{{- ' ' + (message.content or '') + '</s>' }}
{%- endif %}
{%- endfor %}
"""

MISTRAL = FormatTemplate(
    name="mistral",
    prefix="<s>",
    user="[INST] {content}[/INST]",
    generation_prompt="",
    assistant=" {content}</s>",
    stop_tokens=("</s>",),
    special_tokens=("<s>", "</s>", "[INST]", "[/INST]"),
    bos_token="<s>",
    eos_token="</s>",
    jinja_source=_JINJA,
)
