"""DeepSeek V2.5/V3 chat format: BOS, the system text as is, then `<｜User｜>` / `<｜Assistant｜>` turns."""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"

_JINJA = r"""{{- BOS }}
{%- for message in messages %}
{%- if message.role == 'system' %}{{- message.content }}
{%- elif message.role == 'user' %}{{- '<｜User｜>' + message.content }}
{%- elif message.role == 'assistant' %}{{- '<｜Assistant｜>' + (message.content or '') + EOS }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<｜Assistant｜>' }}{%- endif %}
""".replace("BOS", repr(BOS)).replace("EOS", repr(EOS))

DEEPSEEK = FormatTemplate(
    name="deepseek",
    prefix=BOS,
    system="{content}",
    user="<｜User｜>{content}",
    generation_prompt="<｜Assistant｜>",
    assistant="{content}" + EOS,
    stop_tokens=(EOS,),
    special_tokens=(BOS, EOS, "<｜User｜>", "<｜Assistant｜>"),
    bos_token=BOS,
    eos_token=EOS,
    jinja_source=_JINJA,
)
