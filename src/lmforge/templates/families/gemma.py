"""Gemma format: `<start_of_turn>user|model ... <end_of_turn>`; no system role, so the system text opens the
first user turn; contents are trimmed."""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

_JINJA = r"""{{- '<bos>' }}
{%- set has_system = messages and messages[0].role == 'system' %}
{%- set ns = namespace(system=messages[0].content | trim if has_system else '') %}
{%- for message in messages %}
{%- if message.role == 'user' %}
{{- '<start_of_turn>user\n' + (ns.system + '\n\n' if ns.system else '') + message.content | trim + '<end_of_turn>\n' }}
{%- set ns.system = '' %}
{%- elif message.role == 'assistant' %}
{%- if ns.system %}{{- raise_exception('the system prompt needs a user turn after it') }}{%- endif %}
{{- '<start_of_turn>model\n' + (message.content or '') | trim + '<end_of_turn>\n' }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<start_of_turn>model\n' }}{%- endif %}
"""

GEMMA = FormatTemplate(
    name="gemma",
    prefix="<bos>",
    user="<start_of_turn>user\n{content}<end_of_turn>\n",
    generation_prompt="<start_of_turn>model\n",
    assistant="{content}<end_of_turn>\n",
    trim=True,
    stop_tokens=("<end_of_turn>", "<eos>"),
    special_tokens=("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>"),
    bos_token="<bos>",
    eos_token="<end_of_turn>",
    jinja_source=_JINJA,
)
