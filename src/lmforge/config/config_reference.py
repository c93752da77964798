"""Render the config reference (every key, its default and help) from the schema, for `lmforge train --help`."""

from __future__ import annotations

import dataclasses
import textwrap

from lmforge.config.schema import (
    DataConfig,
    DatasetSpec,
    JudgeConfig,
    MethodConfig,
    ModelConfig,
    PreferenceConfig,
    RLConfig,
    RunConfig,
)

SECTIONS = [("model", ModelConfig), ("data", DataConfig), ("method", MethodConfig)]
SECTIONS += [("rl (stages ppo, grpo)", RLConfig), ("rl.judge", JudgeConfig)]
SECTIONS += [("pref (stages rm, dpo, kto, orpo, simpo)", PreferenceConfig)]

TRAIN_NOTE = """\
train:  (transformers TrainingArguments, passed through unchanged; unknown keys are rejected)
  output_dir                  where checkpoints and final outputs go (required)
  per_device_train_batch_size, gradient_accumulation_steps, learning_rate, num_train_epochs, max_steps,
  lr_scheduler_type, warmup_steps, weight_decay, max_grad_norm, seed, logging_steps, save_steps,
  save_total_limit, eval_strategy, eval_steps, bf16, fp16, deepspeed, overwrite_output_dir, ...
  lmforge defaults (overridable): include_num_input_tokens_seen=non_padding, remove_unused_columns=false,
  report_to=tensorboard, logging_steps=10."""


def _default_text(fld: dataclasses.Field) -> str:
    if fld.default is not dataclasses.MISSING:
        return repr(fld.default)
    if fld.default_factory is not dataclasses.MISSING:
        return repr(fld.default_factory())
    return "required"


def field_docs(cls: type) -> list[tuple[str, str, str]]:
    """(name, default as shown, help) of every key of a config section: what `lmforge train --help` prints and
    what `lmforge ui` labels its form fields with, so the two cannot drift apart."""
    return [(fld.name, _default_text(fld), fld.metadata.get("help", "")) for fld in dataclasses.fields(cls)]


def key_reference(key: str, default: str, help_text: str, indent: str = "  ") -> str:
    """One key's entry: `key = default` and its wrapped help."""
    wrapped = textwrap.wrap(help_text, width=100, initial_indent="      ", subsequent_indent="      ")
    return "\n".join([f"{indent}{key} = {default}", *wrapped])


def section_reference(name: str, cls: type) -> str:
    return "\n".join([f"{name}:", *(key_reference(*doc) for doc in field_docs(cls))])


def config_reference() -> str:
    """The full key reference printed by `lmforge train --help`."""
    parts = [
        "Config keys (YAML sections; override any as section.key=value):",
        key_reference(*field_docs(RunConfig)[0], indent=""),
    ]
    parts += [section_reference(name, cls) for name, cls in SECTIONS]
    parts.append(section_reference("data.datasets[] inline entry", DatasetSpec))
    parts.append(TRAIN_NOTE)
    return "\n\n".join(parts)
