r"""GLM-4 chat format (THUDM/glm-4-9b-chat): `[gMASK]<sop>`, then `<|role|>{metadata}\n text` for every message
with a non-empty content (empty ones are skipped); the generation prompt is `<|assistant|>`.

No token ends a reply: the model stops by writing the next role token, so `stop_tokens` lists `<|user|>` and
`<|observation|>` besides `<|endoftext|>` (its generation config). Tools are declared as the real template reads
them: a `tools` list on a message (usually the system one) becomes the Chinese tools preamble with each function
as indented JSON; the `tools` argument and `tool_calls` are not rendered.
"""

from __future__ import annotations

from lmforge.templates.spec import TemplateSpec

_JINJA = r"""{{- '[gMASK]<sop>' }}
{%- for message in messages %}
{%- if message.tools is defined %}
{{- '<|system|>\n你是一个名为 ChatGLM 的人工智能助手。你是基于智谱AI训练的语言模型 GLM-4 模型开发的，'
    + '你的任务是针对用户的问题和要求提供适当的答复和支持。\n\n# 可用工具' }}
{%- for tool in message.tools if tool.type == 'function' %}
{{- '\n## ' ~ tool.function.name ~ '\n\n' ~ tool.function | tojson(indent=4) ~ '\n......' }}
{%- endfor %}
{%- endif %}
{%- if message.content %}
{{- '<|' ~ message.role ~ '|>' ~ message.metadata ~ '\n' ~ message.content }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|assistant|>' }}{%- endif %}
"""

GLM4 = TemplateSpec(
    name="glm4",
    models="GLM-4-9B-Chat (THUDM/glm-4-9b-chat)",
    jinja=_JINJA,
    special_tokens=("[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>", "<|endoftext|>"),
    stop_tokens=("<|user|>", "<|observation|>", "<|endoftext|>"),
    eos_token="<|endoftext|>",
)

SPECS = (GLM4,)
