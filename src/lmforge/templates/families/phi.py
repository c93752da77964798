r"""Phi chat formats, one per release (they differ in BOS, system and end-of-conversation handling).

* ``phi3``: Phi-3-mini (2024-04 release): BOS, then `<|user|>\n text <|end|>\n<|assistant|>\n` (every user turn
  opens the reply turn, so there is no separate generation prompt) and `reply<|end|>\n`; system messages are
  dropped, as the real template does.
* ``phi3.5``: Phi-3.5-mini: `<|role|>\n text <|end|>\n` for every turn (an empty system message is skipped), no
  BOS; a training rendering ends with the tokenizer's EOS, a prompt with `<|assistant|>\n`. ``phi``, lmforge's
  older name for its own Phi-like format, selects this one, the closest to it.
* ``phi4``: Phi-4: `<|im_start|>role<|im_sep|> text <|im_end|>`, every user turn opens the reply turn.
"""

from __future__ import annotations

from lmforge.templates.families.fragments import TEXT_OF
from lmforge.templates.spec import TemplateSpec

_PHI3_SPECIAL = ("<s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>", "<|endoftext|>")

_PHI3 = (
    TEXT_OF
    + r"""{{- bos_token }}
{%- for message in messages %}
{%- if message.role == 'user' %}{{- '<|user|>\n' + text_of(message) + '<|end|>\n<|assistant|>\n' }}
{%- elif message.role == 'assistant' %}{{- text_of(message) + '<|end|>\n' }}
{%- endif %}
{%- endfor %}
"""
)

_PHI35 = (
    TEXT_OF
    + r"""{%- for message in messages %}
{%- if message.role in ['user', 'assistant'] or (message.role == 'system' and message.content) %}
{{- '<|' + message.role + '|>\n' + text_of(message) + '<|end|>\n' }}
{%- endif %}
{%- endfor %}
{{- '<|assistant|>\n' if add_generation_prompt else eos_token }}
"""
)

_PHI4 = (
    TEXT_OF
    + r"""{%- for message in messages %}
{%- if message.role == 'system' %}{{- '<|im_start|>system<|im_sep|>' + text_of(message) + '<|im_end|>' }}
{%- elif message.role == 'user' %}
{{- '<|im_start|>user<|im_sep|>' + text_of(message) + '<|im_end|><|im_start|>assistant<|im_sep|>' }}
{%- elif message.role == 'assistant' %}{{- text_of(message) + '<|im_end|>' }}
{%- endif %}
{%- endfor %}
"""
)

PHI3 = TemplateSpec(
    name="phi3",
    models="Phi-3-mini-4k/128k-instruct (2024-04 release)",
    jinja=_PHI3,
    special_tokens=_PHI3_SPECIAL,
    stop_tokens=("<|end|>", "<|endoftext|>"),
    bos_token="<s>",
    eos_token="<|endoftext|>",
)

PHI35 = TemplateSpec(
    name="phi3.5",
    aliases=("phi",),
    models="Phi-3.5-mini-instruct",
    jinja=_PHI35,
    special_tokens=_PHI3_SPECIAL,
    stop_tokens=("<|end|>", "<|endoftext|>"),
    eos_token="<|endoftext|>",
)

PHI4 = TemplateSpec(
    name="phi4",
    models="Phi-4 (microsoft/phi-4, 2024-12 release)",
    jinja=_PHI4,
    special_tokens=("<|im_start|>", "<|im_sep|>", "<|im_end|>", "<|endoftext|>"),
    stop_tokens=("<|im_end|>", "<|endoftext|>"),
    eos_token="<|im_end|>",
)

SPECS = (PHI3, PHI35, PHI4)
