"""The template table, `get_template`, and the check that a named template matches the tokenizer's own (A8)."""

from __future__ import annotations

from typing import Any

from lmforge.templates.base import ChatTemplate
from lmforge.templates.families import chatml, deepseek, gemma, generic, glm4, llama2, llama3, mistral, phi, qwen
from lmforge.templates.jinja import JinjaTemplate
from lmforge.utils.errors import ConfigError, DataError, did_you_mean
from lmforge.utils.logging import get_logger
from lmforge.utils.registry import Registry

logger = get_logger(__name__)

TEMPLATES: Registry[ChatTemplate] = Registry("chat template")
TEMPLATES.register("default", generic.DEFAULT)
TEMPLATES.register("plain", generic.PLAIN)
TEMPLATES.register("alpaca", generic.ALPACA)
TEMPLATES.register("vicuna", generic.VICUNA)
TEMPLATES.register("chatml", chatml.CHATML)
TEMPLATES.register("qwen", qwen.QWEN)
TEMPLATES.register("qwen3", qwen.QWEN3)
TEMPLATES.register("llama2", llama2.LLAMA2)
TEMPLATES.register("llama3", llama3.LLAMA3)
TEMPLATES.register("mistral", mistral.MISTRAL)
TEMPLATES.register("gemma", gemma.GEMMA)
TEMPLATES.register("glm4", glm4.GLM4)
TEMPLATES.register("phi", phi.PHI)
TEMPLATES.register("deepseek", deepseek.DEEPSEEK)

AUTO = "auto"
_SAMPLE = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a prime number."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "And an even one?"},
    {"role": "assistant", "content": "Two."},
]


def template_names() -> list[str]:
    """Every valid `template:` value."""
    return [AUTO, *TEMPLATES.names()]


def get_template(name: str, tokenizer: Any) -> ChatTemplate:
    """The named template; `auto` renders the tokenizer's own Jinja chat template (in a sandbox)."""
    if name != AUTO:
        if name not in TEMPLATES:
            valid = template_names()
            raise ConfigError(f"unknown template {name!r}{did_you_mean(name, valid)}; valid names: {', '.join(valid)}")
        return TEMPLATES.get(name)
    source = getattr(tokenizer, "chat_template", None)
    if not isinstance(source, str) or not source:
        raise ConfigError(
            "template: auto needs a tokenizer with a chat_template; choose a named template instead: "
            + ", ".join(TEMPLATES.names())
        )
    logger.info("template: auto — using the tokenizer's own chat template")
    return JinjaTemplate(source, name=AUTO, tokenizer=tokenizer)


def _ids(template: ChatTemplate, tokenizer: Any, messages: list[dict]) -> list[int]:
    return [i for turn in template.encode_turns(tokenizer, messages) for i in turn.prompt_ids + turn.response_ids]


def check_template_matches_tokenizer(template: ChatTemplate, tokenizer: Any) -> str | None:
    """A warning text when `template` renders a sample differently from the tokenizer's own template, else None."""
    source = getattr(tokenizer, "chat_template", None)
    if not isinstance(source, str) or not source or isinstance(template, JinjaTemplate):
        return None
    theirs_template = JinjaTemplate(source, name="tokenizer")
    for sample in (_SAMPLE, _SAMPLE[1:]):  # some templates reject a system message
        try:
            theirs = _ids(theirs_template, tokenizer, sample)
        except DataError:
            continue
        ours = _ids(template, tokenizer, sample)
        if ours == theirs:
            return None
        return (
            f"template '{template.name}' renders conversations differently from the tokenizer's own chat template "
            f"(set template: auto to use the tokenizer's). First 40 tokens:\n"
            f"  {template.name}: {tokenizer.convert_ids_to_tokens(ours[:40])}\n"
            f"  tokenizer: {tokenizer.convert_ids_to_tokens(theirs[:40])}"
        )
    return None
