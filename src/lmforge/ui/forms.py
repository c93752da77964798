"""Forms generated from the config schemas, and form values turned back into the exact config the CLI runs.

Every field's label, default and help come from `config.config_reference.field_docs` (what `lmforge train --help` and
`lmforge eval --help` print) and its widget from the field's type, so a key added to the schema appears in the
page with its documentation and nothing can drift. The `train:` section is transformers' TrainingArguments, which
lmforge passes through: the form offers the common keys (TRAIN_KEYS) with transformers' own help text.
Submitted values that equal the default are left out, so the YAML reads like a hand-written config.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Literal

import yaml

from lmforge.config.config_reference import field_docs
from lmforge.utils.errors import ConfigError
from lmforge.utils.paths import meant_as_local_path

#: TrainingArguments keys the Train form shows (any other goes in the "more train keys" YAML box)
TRAIN_KEYS = (
    "output_dir",
    "max_steps",
    "num_train_epochs",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "weight_decay",
    "max_grad_norm",
    "seed",
    "logging_steps",
    "save_steps",
    "save_total_limit",
    "eval_strategy",
    "eval_steps",
    "bf16",
    "fp16",
    "report_to",
)
#: defaults lmforge applies to `train:` (training/arguments.py) as the form shows them; the rest are transformers'
TRAIN_DEFAULT_NOTES = {
    "logging_steps": "lmforge default: 1 when 0 < max_steps <= 50, else 10",
    "report_to": "lmforge default: tensorboard when installed",
}
EXTRA_TRAIN = "train_extra"


def _kind(annotation: Any) -> tuple[str, list[Any] | None, bool]:
    """(widget kind, choices, optional) for a field type: bool | int | float | text | select | yaml."""
    args = typing.get_args(annotation)
    optional = type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        annotation = rest[0] if len(rest) == 1 else Any
    if typing.get_origin(annotation) is Literal:
        return "select", list(typing.get_args(annotation)), optional
    for kind, python_type in (("bool", bool), ("int", int), ("float", float), ("text", str)):
        if annotation is python_type:
            return kind, None, optional
    return "yaml", None, optional


def _json_default(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool, list, dict, type(None))) else str(value)


def section_fields(cls: type, choices: dict[str, tuple] | None = None) -> list[dict[str, Any]]:
    """The form fields of one config section (a schema dataclass)."""
    hints = typing.get_type_hints(cls)
    defaults = {f.name: f for f in dataclasses.fields(cls)}
    fields = []
    for name, default_text, help_text in field_docs(cls):
        kind, options, optional = _kind(hints[name])
        if choices and name in choices:
            kind, options = "select", list(choices[name])
        fld = defaults[name]
        factory = fld.default_factory  # MISSING (not callable) for plain defaults
        default = factory() if callable(factory) else fld.default
        fields.append(
            {
                "key": name,
                "kind": kind,
                "choices": options,
                "optional": optional,
                "default": _json_default(default),
                "default_text": default_text,
                "help": help_text,
            }
        )
    return fields


def train_fields() -> list[dict[str, Any]]:
    """The common TrainingArguments keys with transformers' help and the defaults a run gets."""
    from transformers import TrainingArguments

    known = {f.name: f for f in dataclasses.fields(TrainingArguments)}
    fields = []
    for name in TRAIN_KEYS:
        fld = known[name]
        default = None if name == "output_dir" else _json_default(fld.default)
        kind = {bool: "bool", int: "int", float: "float"}.get(type(default), "text")
        help_text = "Where checkpoints and final outputs go (required)." if name == "output_dir" else ""
        help_text = help_text or fld.metadata.get("help", "")
        fields.append(
            {
                "key": name,
                "kind": kind,
                "choices": None,
                "optional": True,
                "default": None if name in TRAIN_DEFAULT_NOTES else default,
                "default_text": TRAIN_DEFAULT_NOTES.get(name, repr(default)),
                "help": help_text,
            }
        )
    return fields


def _parse(field: dict[str, Any], value: Any, where: str) -> Any:
    """A submitted value as the config type (the page sends strings for text and numbers)."""
    kind = field["kind"]
    if kind == "bool":
        return bool(value)
    if isinstance(value, str):
        value = value.strip()
    if value in ("", None):
        return None if field["optional"] or field["default"] is None else field["default"]
    try:
        if kind == "int":
            return int(value)
        if kind == "float":
            return float(value)
        if kind == "yaml":
            return yaml.safe_load(value)
    except (ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"{where}: expected {kind}, got {value!r} ({str(exc).splitlines()[0]})") from None
    if kind == "select":
        for choice in field["choices"]:
            if str(choice) == str(value):
                return choice
        raise ConfigError(f"{where}: expected one of {field['choices']}, got {value!r}")
    return str(value)


def form_to_raw(spec: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """Submitted {section: {key: value}} -> the raw config mapping, leaving out values equal to the default."""
    raw: dict[str, Any] = {}
    for section in spec["sections"]:
        name = section["name"]
        given = values.get(name) or {}
        kept = {}
        for field in section["fields"]:
            if field["key"] not in given:
                continue
            value = _parse(field, given[field["key"]], f"{name}.{field['key']}" if name else field["key"])
            if value != field["default"] and not (value is None and field["optional"]):
                kept[field["key"]] = value
        if name:
            if kept:
                raw[name] = kept
        else:
            raw.update(kept)
    extra = (values.get(EXTRA_TRAIN) or "").strip()
    if extra:
        more = _parse({"kind": "yaml", "optional": True, "default": None}, extra, "more train keys")
        if not isinstance(more, dict):
            raise ConfigError(f"more train keys: expected a YAML mapping of TrainingArguments keys, got {extra!r}")
        raw.setdefault("train", {}).update(more)
    return raw


def resolve_paths(raw: dict[str, Any], named: dict[str, str]) -> list[dict[str, Any]]:
    """Make every local path named in the config absolute (in `raw`), so what runs is what the page showed;
    hub ids stay as typed. Returns {key, typed, resolved, exists} per path for the page to show."""
    from lmforge.data.readers import FILE_TYPES  # a missing "x.json" is a local file, not a hub id

    shown = []
    for key, typed in named.items():
        path = Path(typed).expanduser()
        local = path.exists() or meant_as_local_path(typed, tuple(FILE_TYPES)) or key.endswith("output_dir")
        resolved = str(path.resolve()) if local else typed
        _set_dotted(raw, key, resolved)
        shown.append({"key": key, "typed": typed, "resolved": resolved, "exists": path.exists() if local else None})
    return shown


def _set_dotted(raw: dict[str, Any], key: str, value: str) -> None:
    """Set `data.datasets[0].path`-style keys in a nested mapping (entries the key names exist)."""
    target: Any = raw
    parts = key.replace("[", ".").replace("]", "").split(".")
    for part in parts[:-1]:
        target = target[int(part)] if isinstance(target, list) else target.setdefault(part, {})
    target[parts[-1]] = value


def dump_yaml(raw: dict[str, Any]) -> str:
    return yaml.safe_dump(raw, sort_keys=False, allow_unicode=True)
