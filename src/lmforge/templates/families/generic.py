"""Formats without special tokens, for any tokenizer (no real model template to match): `default`, `plain`,
`alpaca`, `vicuna`.

They write the tokenizer's own BOS first when `bos_token` is set and non-empty (lmforge passes an empty one when
the tokenizer does not add a BOS by itself) and end every reply with its `eos_token`. They render no tools.
"""

from __future__ import annotations

from lmforge.templates.families.fragments import jinja_set
from lmforge.templates.spec import TemplateSpec

# One body, parameterised by: system_open/system_close around the system text (default_system when the
# conversation has none; nothing when that is empty too), user_open/user_close around a user text, prompt (the
# generation prompt, also written before each reply), reply_open before a reply and reply_close after its EOS.
_BODY = r"""{%- if eos_token is not defined or eos_token is none %}
{{- raise_exception("this template ends replies with the tokenizer's eos_token, which is not set") }}
{%- endif %}
{%- if bos_token %}{{- bos_token }}{%- endif %}
{%- if messages and messages[0].role == 'system' %}
{{- system_open + (messages[0].content or '') + system_close }}
{%- set turns = messages[1:] %}
{%- else %}
{%- if default_system %}{{- system_open + default_system + system_close }}{%- endif %}
{%- set turns = messages %}
{%- endif %}
{%- for message in turns %}
{%- if message.role == 'user' %}
{{- user_open + (message.content or '') + user_close }}
{%- elif message.role == 'assistant' and not message.tool_calls %}
{{- prompt + reply_open + (message.content or '') + eos_token + reply_close }}
{%- elif message.role == 'system' %}
{{- raise_exception('a system message is only allowed first') }}
{%- else %}
{{- raise_exception('this template cannot render tool calls or tool results') }}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- prompt }}{%- endif %}
"""


def _generic(
    *,
    system: tuple[str, str],
    user: tuple[str, str],
    prompt: str,
    reply: tuple[str, str],
    default_system: str = "",
) -> str:
    return (
        jinja_set(
            system_open=system[0],
            system_close=system[1],
            default_system=default_system,
            user_open=user[0],
            user_close=user[1],
            prompt=prompt,
            reply_open=reply[0],
            reply_close=reply[1],
        )
        + _BODY
    )


DEFAULT = TemplateSpec(
    name="default",
    generic=True,
    models="any model (Human:/Assistant: turns, no special tokens)",
    jinja=_generic(system=("System: ", "\n"), user=("Human: ", "\n"), prompt="Assistant:", reply=(" ", "\n")),
)

PLAIN = TemplateSpec(
    name="plain",
    generic=True,
    models="any model (texts concatenated, EOS after each reply)",
    jinja=_generic(system=("", "\n\n"), user=("", ""), prompt="", reply=("", "")),
)

ALPACA = TemplateSpec(
    name="alpaca",
    generic=True,
    models="any model (Alpaca ### Instruction / ### Response)",
    jinja=_generic(
        system=("", "\n\n"),
        default_system=(
            "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        ),
        user=("### Instruction:\n", "\n\n"),
        prompt="### Response:\n",
        reply=("", "\n\n"),
    ),
)

VICUNA = TemplateSpec(
    name="vicuna",
    generic=True,
    models="any model (Vicuna v1.1 USER:/ASSISTANT:)",
    jinja=_generic(
        system=("", " "),
        default_system=(
            "A chat between a curious user and an artificial intelligence assistant. "
            "The assistant gives helpful, detailed, and polite answers to the user's questions."
        ),
        user=("USER: ", " "),
        prompt="ASSISTANT:",
        reply=(" ", ""),
    ),
)

SPECS = (DEFAULT, PLAIN, ALPACA, VICUNA)
