"""GLM-4 chat format: `[gMASK]<sop>` then `<|role|>\\n content` turns.

GLM-4's own template writes no end-of-reply token (the model stops by emitting the next role token). Training
on that format would never teach the model to stop, so, like the efficient-EOS convention other trainers use for
GLM, our format ends each reply with `<|endoftext|>` and our Jinja writes it too. `template: auto` keeps the
model's own rendering instead.
"""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

_JINJA = r"""{{- '[gMASK]<sop>' }}
{%- for message in messages %}
{%- if message.role == 'assistant' %}{{- '<|assistant|>\n' + (message.content or '') + '<|endoftext|>' }}
{%- else %}{{- '<|' + message.role + '|>\n' + message.content }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|assistant|>' }}{%- endif %}
"""

GLM4 = FormatTemplate(
    name="glm4",
    prefix="[gMASK]<sop>",
    system="<|system|>\n{content}",
    user="<|user|>\n{content}",
    generation_prompt="<|assistant|>",
    assistant="\n{content}<|endoftext|>",
    stop_tokens=("<|endoftext|>", "<|user|>", "<|observation|>"),
    special_tokens=("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>"),
    eos_token="<|endoftext|>",
    jinja_source=_JINJA,
)
