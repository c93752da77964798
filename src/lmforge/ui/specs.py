"""What each tab's form is made of, and a submitted form turned into the exact `lmforge` command it stands for.

Train and Evaluate forms come from the config schemas (forms.py); Export and the Chat sampling options come from
the `lmforge export` / `lmforge chat` argument parsers and GenerationOptions, so the page offers exactly the flags
and help the CLI has. Every command is an argument list for `lmforge` (a job process, never a shell).
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.config.schema import METHODS, STAGES, RunConfig
from lmforge.ui.forms import dump_yaml, form_to_raw, resolve_paths, section_fields, train_fields
from lmforge.ui.jobs import CONFIG_FILE, JobRunner, display_command
from lmforge.utils.errors import ConfigError


@dataclass
class Planned:
    """A job as the page previews it and Start runs it."""

    kind: str
    args: list[str]
    output_dir: str
    config_yaml: str | None
    paths: list[dict[str, Any]]

    def preview(self) -> dict[str, Any]:
        return {"command": display_command(self.args), "yaml": self.config_yaml, "paths": self.paths}


def _section(name: str, title: str, fields: list[dict[str, Any]], open_: bool = False) -> dict[str, Any]:
    return {"name": name, "title": title, "fields": fields, "open": open_}


def train_spec() -> dict[str, Any]:
    from lmforge.config.schema import DataConfig, MethodConfig, ModelConfig, PreferenceConfig, RLConfig

    stage = [f for f in section_fields(RunConfig) if f["key"] == "stage"]
    stage[0].update(kind="select", choices=list(STAGES))
    return {
        "sections": [
            _section("", "Stage", stage, True),
            _section("model", "Model", section_fields(ModelConfig), True),
            _section("data", "Data", section_fields(DataConfig), True),
            _section("method", "Method", section_fields(MethodConfig, {"name": METHODS}), True),
            _section("train", "Training (TrainingArguments)", train_fields(), True),
            _section("pref", "Preference stages (rm, dpo, kto, orpo, simpo)", section_fields(PreferenceConfig)),
            _section("rl", "Online RL stages (ppo, grpo)", section_fields(RLConfig)),
        ]
    }


def eval_spec() -> dict[str, Any]:
    from lmforge.evaluation.eval_config import ChoiceConfig, EvalConfig, EvalDataConfig, EvalModelConfig
    from lmforge.inference.sampling import GenerationOptions

    top = [f for f in section_fields(EvalConfig) if f["kind"] != "yaml"]
    return {
        "sections": [
            _section("", "Task", top, True),
            _section("model", "Model", section_fields(EvalModelConfig), True),
            _section("data", "Data (perplexity, generate)", section_fields(EvalDataConfig), True),
            _section("generate", "Generation (generate)", section_fields(GenerationOptions)),
            _section("choice", "Multiple choice (choice)", section_fields(ChoiceConfig)),
        ]
    }


def parser_fields(parser: argparse.ArgumentParser) -> list[dict[str, Any]]:
    """Form fields of a subcommand's flags: name, default, choices and help as `--help` shows them."""
    fields = []
    for action in parser._actions:
        if not action.option_strings or isinstance(action, argparse._HelpAction):
            continue
        flag = max(action.option_strings, key=len)
        is_bool = isinstance(action, argparse._StoreTrueAction)
        fields.append(
            {
                "key": flag,
                "kind": "bool" if is_bool else "select" if action.choices else "text",
                "choices": list(action.choices) if action.choices else None,
                "optional": not action.required,
                "required": action.required,
                "default": action.default,
                "default_text": repr(action.default),
                "help": action.help or "",
            }
        )
    return fields


def subcommand_parser(name: str) -> argparse.ArgumentParser:
    from lmforge.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices[name]
    raise AssertionError("the CLI has no subcommands")


def export_spec() -> dict[str, Any]:
    return {"sections": [_section("", "lmforge export", parser_fields(subcommand_parser("export")), True)]}


def chat_spec() -> dict[str, Any]:
    from lmforge.inference.sampling import GenerationOptions

    return {"sections": [_section("options", "Sampling", section_fields(GenerationOptions), True)]}


def _validated_yaml(raw: dict[str, Any], loader: Any) -> Any:
    """Load the config the way the CLI will (same loader, same checks): errors surface before Start."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / CONFIG_FILE
        path.write_text(dump_yaml(raw), encoding="utf-8")
        return loader(path)


def plan_train(values: dict[str, Any], runner: JobRunner) -> Planned:
    from lmforge.config import load_config
    from lmforge.training.run_dir import input_paths

    raw = form_to_raw(train_spec(), values)
    raw = {"stage": raw.pop("stage", "sft"), **raw}
    if not raw.get("train", {}).get("output_dir"):
        raise ConfigError("train.output_dir: required (the folder the run writes)")
    cfg = _validated_yaml(raw, load_config)
    paths = resolve_paths(raw, {**input_paths(cfg), "train.output_dir": cfg.output_dir})
    output_dir = raw["train"]["output_dir"]
    yaml_path = runner.folder_for("train", output_dir) / CONFIG_FILE
    return Planned("train", ["train", str(yaml_path)], output_dir, dump_yaml(raw), paths)


def plan_eval(values: dict[str, Any], runner: JobRunner) -> Planned:
    from lmforge.evaluation.eval_config import load_eval_config

    raw = form_to_raw(eval_spec(), values)
    if not raw.get("output_dir"):
        raise ConfigError("output_dir: required (the folder eval_results.json goes to)")
    cfg = _validated_yaml(raw, load_eval_config)
    named = {"model.name_or_path": cfg.model.name_or_path, "model.adapter": cfg.model.adapter}
    named |= {"data.catalog": cfg.data.catalog, "data.dataset_dir": cfg.data.dataset_dir}
    named |= {"choice.benchmark_dir": cfg.choice.benchmark_dir, "output_dir": cfg.output_dir}
    paths = resolve_paths(raw, {k: v for k, v in named.items() if v})
    yaml_path = runner.folder_for("eval", raw["output_dir"]) / CONFIG_FILE
    return Planned("eval", ["eval", str(yaml_path)], raw["output_dir"], dump_yaml(raw), paths)


PATH_FLAGS = ("--model", "--adapter", "--output")


def plan_export(values: dict[str, Any]) -> Planned:
    """`lmforge export` flags from the form (defaults left out); local paths made absolute."""
    given = values.get("") or {}
    args = ["export"]
    paths = []
    for field in parser_fields(subcommand_parser("export")):
        value = given.get(field["key"])
        if field["kind"] == "bool":
            if value:
                args.append(field["key"])
            continue
        value = (value or "").strip() if isinstance(value, str) else value
        if not value:
            if field["required"]:
                raise ConfigError(f"{field['key']}: required")
            continue
        if value == field["default"]:
            continue
        if field["choices"] and value not in field["choices"]:
            raise ConfigError(f"{field['key']}: expected one of {field['choices']}, got {value!r}")
        if field["key"] in PATH_FLAGS:
            shown = resolve_paths({"p": value}, {"p": value})[0]
            paths.append({**shown, "key": field["key"]})
            value = shown["resolved"]
        args += [field["key"], str(value)]
    output = args[args.index("--output") + 1]
    return Planned("export", args, output, None, paths)


def chat_options(values: dict[str, Any]) -> Any:
    from lmforge.inference.sampling import GenerationOptions

    raw = form_to_raw(chat_spec(), {"options": values})
    return GenerationOptions(**raw.get("options", {}))


def start(planned: Planned, runner: JobRunner) -> Any:
    return runner.start(planned.kind, planned.args, planned.output_dir, planned.config_yaml)


def all_forms() -> dict[str, Any]:
    """Every tab's form, for the page to render."""
    return {"train": train_spec(), "eval": eval_spec(), "export": export_spec(), "chat": chat_spec()}
