"""The template table, `get_template`, and the check that a named template matches the tokenizer's own (A8)."""

from __future__ import annotations

import json
import os
from typing import Any

from lmforge.templates.base import ChatTemplate, Message
from lmforge.templates.families import SPECS
from lmforge.templates.spec import TemplateSpec
from lmforge.utils.errors import ConfigError, DataError, did_you_mean
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

AUTO = "auto"
TEMPLATES: dict[str, TemplateSpec] = {spec.name: spec for spec in SPECS}
ALIASES: dict[str, str] = {alias: spec.name for spec in SPECS for alias in spec.aliases}

# A8 samples: with and without a system message, one and two replies (some templates refuse a system message).
_SYSTEM = {"role": "system", "content": "You are terse."}
_TURNS = [
    {"role": "user", "content": "Name a prime number."},
    {"role": "assistant", "content": "Seven."},
    {"role": "user", "content": "And an even one?"},
    {"role": "assistant", "content": "Two."},
]
_A8_SAMPLES: tuple[list[Message], ...] = (_TURNS, [_SYSTEM, *_TURNS], _TURNS[:2])


def template_names() -> list[str]:
    """Every valid `template:` value (aliases included)."""
    return [AUTO, *TEMPLATES, *ALIASES]


def template_table() -> list[tuple[str, str, str]]:
    """(name, aliases, models) per named template, for `lmforge templates`."""
    return [(spec.name, ", ".join(spec.aliases), spec.models) for spec in SPECS]


def get_template(name: str, tokenizer: Any, options: dict[str, Any] | None = None) -> ChatTemplate:
    """The named template; `auto` is the tokenizer's own Jinja chat template. `options` set template variables
    (e.g. `enable_thinking`, `date_string`)."""
    if name == AUTO:
        template = _auto_template(tokenizer, options)
    else:
        spec = TEMPLATES.get(ALIASES.get(name, name))
        if spec is None:
            valid = template_names()
            raise ConfigError(f"unknown template {name!r}{did_you_mean(name, valid)}; valid names: {', '.join(valid)}")
        template = ChatTemplate(spec.name, spec.jinja, spec=spec, options=options)
    if tokenizer is not None:
        template.stop_token_ids(tokenizer)  # render the probes now: a broken or hostile template fails before work
    return template


def _auto_template(tokenizer: Any, options: dict[str, Any] | None) -> ChatTemplate:
    source = getattr(tokenizer, "chat_template", None)
    if isinstance(source, dict):  # several named templates: the default one
        source = source.get("default")
    if not isinstance(source, str) or not source:
        raise ConfigError(
            "template: auto needs a tokenizer with a chat_template; choose a named template instead "
            "(`lmforge templates` lists them): " + ", ".join(TEMPLATES)
        )
    logger.info("template: auto — using the tokenizer's own chat template")
    return ChatTemplate(AUTO, source, stop_ids=generation_stop_ids(tokenizer), options=options)


def generation_stop_ids(tokenizer: Any) -> list[int]:
    """The eos ids of the model's generation_config.json beside its tokenizer (what the model stops on)."""
    folder = getattr(tokenizer, "name_or_path", "") or ""
    path = os.path.join(folder, "generation_config.json")
    if not os.path.isfile(path):
        return []
    try:
        with open(path, encoding="utf-8") as f:
            eos = json.load(f).get("eos_token_id")
    except (OSError, ValueError):
        return []
    ids = eos if isinstance(eos, list) else [eos]
    return [i for i in ids if isinstance(i, int)]


def check_template_matches_tokenizer(template: ChatTemplate, tokenizer: Any) -> str | None:
    """A warning text when `template` encodes a sample differently from `tokenizer.apply_chat_template`."""
    source = getattr(tokenizer, "chat_template", None)
    if not source or template.name == AUTO:
        return None
    for sample in _A8_SAMPLES:
        try:
            theirs = tokenizer.apply_chat_template(sample, tokenize=True, return_dict=False)
        except Exception:
            continue
        try:
            encoded = template.encode(tokenizer, sample)
            ours = encoded.input_ids[:-1] if encoded.appended_stop else encoded.input_ids
        except DataError as err:
            return (
                f"template '{template.name}' cannot encode a conversation the tokenizer's own template accepts: {err}"
            )
        if ours != theirs:
            return _mismatch(template.name, tokenizer, ours, theirs)
        try:
            theirs = tokenizer.apply_chat_template(sample[:-1], tokenize=True, return_dict=False,
                                                   add_generation_prompt=True)  # fmt: skip
        except Exception:
            continue
        ours = template.encode_prompt(tokenizer, sample[:-1])
        if ours != theirs:
            return _mismatch(template.name, tokenizer, ours, theirs, "prompts")
    return None


def _mismatch(name: str, tokenizer: Any, ours: list[int], theirs: list[int], what: str = "conversations") -> str:
    first = next(
        (i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b), min(len(ours), len(theirs))
    )
    lo = max(0, first - 4)
    return (
        f"template '{name}' encodes {what} differently from the tokenizer's own chat template (set template: auto "
        f"to use the tokenizer's, or pick the named template for this model: `lmforge templates`). "
        f"First difference at token {first}:\n"
        f"  {name}: {tokenizer.convert_ids_to_tokens(ours[lo : first + 8])}\n"
        f"  tokenizer: {tokenizer.convert_ids_to_tokens(theirs[lo : first + 8])}"
    )
