"""Load a RunConfig from YAML plus dotted `key=value` overrides, with strict key and type checking."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from lmforge.config.schema import LMFORGE_TRAIN_KEYS, DatasetSpec, RunConfig
from lmforge.utils.errors import ConfigError, did_you_mean


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping with the safe loader (tags such as !!python/object are refused)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of `raw` with `a.b.c=value` overrides applied (values parsed as YAML scalars/lists)."""
    result = _deep_copy(raw)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {exc}") from None
        node = result
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[parts[-1]] = value
    return result


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Build a validated, frozen RunConfig from a YAML file (optional) and overrides."""
    raw = read_yaml(path) if path else {}
    from lmforge.config.convert import flat_config_hint, looks_flat

    if path and looks_flat(raw):  # overrides alone cannot be a flat file
        raise ConfigError(flat_config_hint(path, raw))
    raw = apply_overrides(raw, overrides or [])
    cfg = build_dataclass(RunConfig, raw, where="")
    cfg = dataclasses.replace(cfg, train=validate_training_arguments(cfg.train))
    from lmforge.config.checks import check_config

    check_config(cfg)
    return cfg


def build_dataclass(cls: type, raw: Any, where: str) -> Any:
    """Instantiate dataclass `cls` from a mapping, rejecting unknown keys and wrong types with their dotted path."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields:
            raise ConfigError(f"unknown config key {path!r}{did_you_mean(str(key), fields)}")
        kwargs[key] = _convert(value, hints[key], path)
    return cls(**kwargs)


def dataset_spec_from_mapping(raw: dict[str, Any], where: str) -> DatasetSpec:
    """Inline dataset entries and catalogue entries share this strict conversion."""
    spec = build_dataclass(DatasetSpec, raw, where)
    if not spec.path:
        raise ConfigError(f"{where}: a dataset needs a 'path'")
    return spec if spec.name else dataclasses.replace(spec, name=Path(spec.path).name)


def _convert(value: Any, hint: Any, path: str) -> Any:
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build_dataclass(hint, value, path)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{path}: {value!r} does not match {hint}")
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{path}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if hint is Any:
        return value
    if origin is list:
        if isinstance(value, (str, int, float)):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__}")
        return [_convert(v, args[0], f"{path}[{i}]") if args else v for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    return _convert_scalar(value, hint, path)


def _convert_scalar(value: Any, hint: Any, path: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{path}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML reads "1e-4" as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{path}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise ConfigError(f"{path}: expected a string, got {type(value).__name__}")
    return value


def training_argument_fields() -> dict[str, dataclasses.Field]:
    """The fields of transformers.TrainingArguments (imported lazily: it pulls in torch)."""
    from transformers import TrainingArguments

    return {f.name: f for f in dataclasses.fields(TrainingArguments) if f.init}


def validate_training_arguments(train: dict[str, Any]) -> dict[str, Any]:
    """Check `train:` keys against TrainingArguments and coerce numeric strings ("1e-4") to numbers."""
    fields = training_argument_fields()
    result: dict[str, Any] = {}
    for key, value in train.items():
        if key in LMFORGE_TRAIN_KEYS:
            result[key] = _convert_scalar(value, LMFORGE_TRAIN_KEYS[key], f"train.{key}")
            continue
        if key not in fields:
            raise ConfigError(
                f"unknown config key 'train.{key}' (not a TrainingArguments field){did_you_mean(key, fields)}"
            )
        result[key] = _coerce_training_value(value, fields[key], f"train.{key}")
    return result


def _coerce_training_value(value: Any, fld: dataclasses.Field, path: str) -> Any:
    hint = fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", str(fld.type))
    if value is False and "Strategy" in str(fld.type):  # YAML 1.1 reads `eval_strategy: no` as false
        return "no"
    if isinstance(value, str) and hint.startswith("float"):
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{path}: expected a number, got {value!r}") from None
    if isinstance(value, str) and hint.startswith("int"):
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{path}: expected an integer, got {value!r}") from None
    return value


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """Plain-dict view of a config (for saving the resolved config next to the run outputs)."""
    return dataclasses.asdict(cfg)


def _deep_copy(raw: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in raw.items()}
