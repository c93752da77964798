"""Formats without special tokens, used with any tokenizer: `{bos}`/`{eos}` are that tokenizer's own tokens
(BOS only when the tokenizer adds one by itself). They have no Jinja counterpart.
"""

from __future__ import annotations

from lmforge.templates.format import FormatTemplate

DEFAULT = FormatTemplate(
    name="default",
    prefix="{bos}",
    system="System: {content}\n",
    user="Human: {content}\n",
    generation_prompt="Assistant:",
    assistant=" {content}{eos}\n",
)

PLAIN = FormatTemplate(
    name="plain",
    prefix="{bos}",
    system="{content}\n\n",
    user="{content}",
    generation_prompt="",
    assistant="{content}{eos}",
)

ALPACA = FormatTemplate(
    name="alpaca",
    prefix="{bos}",
    system="{content}\n\n",
    default_system=(
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    ),
    user="### Instruction:\n{content}\n\n",
    generation_prompt="### Response:\n",
    assistant="{content}{eos}\n\n",
)

VICUNA = FormatTemplate(
    name="vicuna",
    prefix="{bos}",
    system="{content} ",
    default_system=(
        "A chat between a curious user and an artificial intelligence assistant. "
        "The assistant gives helpful, detailed, and polite answers to the user's questions."
    ),
    user="USER: {content} ",
    generation_prompt="ASSISTANT:",
    assistant=" {content}{eos}",
)
