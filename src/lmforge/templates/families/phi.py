"""Phi-3 format: `<|role|>\\n ... <|end|>\\n` for every turn; no BOS."""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

_JINJA = r"""{%- for message in messages %}
{{- '<|' + message.role + '|>\n' + (message.content or '') + '<|end|>\n' }}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|assistant|>\n' }}{%- endif %}
"""

PHI = FormatTemplate(
    name="phi",
    system="<|system|>\n{content}<|end|>\n",
    user="<|user|>\n{content}<|end|>\n",
    generation_prompt="<|assistant|>\n",
    assistant="{content}<|end|>\n",
    stop_tokens=("<|end|>", "<|endoftext|>"),
    special_tokens=("<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>"),
    eos_token="<|end|>",
    jinja_source=_JINJA,
)
