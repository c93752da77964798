r"""Gemma chat formats: `<bos>` then `<start_of_turn>user|model\n text <end_of_turn>\n` turns, texts trimmed;
turns must alternate user/model.

* ``gemma2``: Gemma-2 (and Gemma-1.1) instruct: rejects a system message, as the real template does.
* ``gemma3``: Gemma-3 instruct: the system text, untrimmed, plus a blank line opens the first user turn (an empty
  system message still writes the blank line); contents may also be lists of text and image parts. ``gemma``,
  lmforge's older name for its own Gemma-like format, now selects this current release.
"""

from __future__ import annotations

from lmforge.templates.families.fragments import ALTERNATE
from lmforge.templates.spec import TemplateSpec

_SPECIAL = ("<bos>", "<eos>", "<start_of_turn>", "<end_of_turn>")
# `turn_head(message)`: the opening of a message's turn (Gemma calls the assistant "model").
_TURN_HEAD = r"""{%- macro turn_head(message) %}
{{- '<start_of_turn>' + ('model' if message.role == 'assistant' else message.role) + '\n' }}
{%- endmacro %}
"""
_GENERATION_PROMPT = r"""{%- if add_generation_prompt %}{{- '<start_of_turn>model\n' }}{%- endif %}
"""

_GEMMA2 = (
    ALTERNATE
    + _TURN_HEAD
    + r"""{{- bos_token }}
{%- if messages[0].role == 'system' %}{{- raise_exception('Gemma 2 has no system role') }}{%- endif %}
{{- alternate(messages, 0) }}
{%- for message in messages %}
{{- turn_head(message) + message.content | trim + '<end_of_turn>\n' }}
{%- endfor %}
"""
    + _GENERATION_PROMPT
)

_GEMMA3 = (
    ALTERNATE
    + _TURN_HEAD
    + r"""{{- bos_token }}
{%- if messages[0].role == 'system' %}
{%- set content = messages[0].content %}
{%- set first_user_prefix = (content if content is string else content[0].text) + '\n\n' %}
{%- set turns = messages[1:] %}
{%- else %}
{%- set first_user_prefix = '' %}
{%- set turns = messages %}
{%- endif %}
{{- alternate(turns, 1 if first_user_prefix else 0) }}
{%- for message in turns %}
{{- turn_head(message) + (first_user_prefix if loop.first else '') }}
{%- if message.content is string %}
{{- message.content | trim }}
{%- elif message.content is iterable %}
{%- for part in message.content %}
{%- if part.type == 'image' %}{{- '<start_of_image>' }}
{%- elif part.type == 'text' %}{{- part.text | trim }}
{%- endif %}
{%- endfor %}
{%- else %}
{{- raise_exception('a message content must be a text or a list of parts, got: ' ~ message.content) }}
{%- endif %}
{{- '<end_of_turn>\n' }}
{%- endfor %}
"""
    + _GENERATION_PROMPT
)

GEMMA2 = TemplateSpec(
    name="gemma2",
    models="Gemma-2 instruct (gemma-2-2b/9b/27b-it)",
    jinja=_GEMMA2,
    special_tokens=_SPECIAL,
    stop_tokens=("<end_of_turn>", "<eos>"),
    bos_token="<bos>",
    eos_token="<eos>",
)

GEMMA3 = TemplateSpec(
    name="gemma3",
    aliases=("gemma",),
    models="Gemma-3 instruct (gemma-3-1b/4b/12b/27b-it), text and image parts",
    jinja=_GEMMA3,
    special_tokens=(*_SPECIAL, "<start_of_image>"),
    stop_tokens=("<end_of_turn>", "<eos>"),
    bos_token="<bos>",
    eos_token="<eos>",
)

SPECS = (GEMMA2, GEMMA3)
