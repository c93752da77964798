"""`TemplateSpec`: a named chat format, declared once as our own Jinja plus what the Jinja cannot say.

A named template renders exactly the text that the real model's own chat template renders (tests compare
against the verbatim templates in tests/fixtures/real_templates), through the same sandboxed Jinja renderer and
the same whole-text tokenisation as `template: auto`. The fields besides `jinja` describe the format for the
parts of lmforge that cannot read them off a rendering: which tokens `lmforge init-model` adds, which ids
generation stops on, which variables the Jinja takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, kw_only=True)
class TemplateSpec:
    #: registry name, e.g. "qwen2.5"
    name: str
    #: our Jinja chat template; renders what the real family template renders (same variables: messages, tools,
    #: add_generation_prompt, bos_token, eos_token, and the `options` below)
    jinja: str
    #: the models it fits, for `lmforge templates` (e.g. "Qwen2.5 / Qwen2.5-Coder / QwQ instruct models")
    models: str
    #: older or shorter names that select the same format
    aliases: tuple[str, ...] = ()
    #: tokens the format writes as control tokens (added as special tokens by `lmforge init-model`)
    special_tokens: tuple[str, ...] = ()
    #: tokens that end an assistant turn besides the tokenizer's EOS (the model's generation_config eos ids)
    stop_tokens: tuple[str, ...] = ()
    #: BOS and EOS of a tokenizer built for this format (`lmforge init-model`); None/"" = the format has none
    bos_token: str | None = None
    eos_token: str = ""
    #: extra template variables and their defaults (e.g. {"date_string": "26 Jul 2024"}, {"enable_thinking": True})
    options: dict[str, Any] = field(default_factory=dict)
    #: whether the real template renders `tools` / `tool_calls` / tool messages
    supports_tools: bool = False
    #: a format without control tokens of its own, used with any tokenizer (alpaca, vicuna...): it writes
    #: `bos_token` only when that tokenizer's own encoding adds one
    generic: bool = False
