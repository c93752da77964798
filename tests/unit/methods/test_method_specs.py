"""The method table: every row complete and resolvable, every method option owned, and the hooks a row names
reaching the trainer (callbacks, optimizer, the step after the final save) with no state riding on the model."""

from __future__ import annotations

import dataclasses
import inspect
import json
from pathlib import Path
from typing import get_args

import pytest

from lmforge.config.methods import METHOD_SPECS, MethodKind, MethodSpec, option_owners
from lmforge.config.schema import MethodConfig, RunConfig
from lmforge.methods.method_hooks import MethodHooks
from lmforge.methods.peft_adapters import AdaLoraCallback
from lmforge.training.run import trainer_hooks

from .helpers import prepared

#: MethodConfig fields every adapter method reads in the same sense (no owner): switching method keeps them
SHARED_OPTIONS = {"name", "lora_rank", "lora_alpha", "lora_dropout", "lora_target", "modules_to_save", "neftune_alpha"}


def spec_problems(spec: MethodSpec) -> list[str]:
    """What is missing or dangling in one row of the method table."""
    problems = []
    fields = {f.name for f in dataclasses.fields(MethodConfig)}
    if not spec.summary:
        problems.append("no summary")
    if spec.kind not in get_args(MethodKind):
        problems.append(f"unknown kind {spec.kind}")
    for name, arity in (("prepare", 3), ("hooks", 4)):
        try:
            function = spec.load(name)  # type: ignore[arg-type]
        except (ImportError, AttributeError, ValueError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if function is not None and len(inspect.signature(function).parameters) != arity:
            problems.append(f"{name} takes {len(inspect.signature(function).parameters)} arguments, not {arity}")
    problems += [f"option {o!r} matches no MethodConfig field" for o in spec.options if not fields & _prefixed(o)]
    if spec.quantised_variant_of is not None and spec.quantised_variant_of not in METHOD_SPECS:
        problems.append(f"quantised_variant_of names no method: {spec.quantised_variant_of}")
    if spec.continues_adapter and spec.kind != "adapter":
        problems.append("only an adapter can be continued from model.adapter_name_or_path")
    return problems


def _prefixed(prefix: str) -> set[str]:
    return {f.name for f in dataclasses.fields(MethodConfig) if f.name.startswith(prefix)}


@pytest.mark.parametrize("name", list(METHOD_SPECS))
def test_every_method_spec_is_complete(name: str) -> None:
    assert spec_problems(METHOD_SPECS[name]) == []


def test_an_incomplete_spec_is_reported() -> None:  # negative control for the completeness check
    broken = MethodSpec(
        "broken", "", "adapter", "lmforge.methods.lora:no_such_function", options=("nothing_",), hooks="nowhere:x"
    )
    problems = spec_problems(broken)
    assert len(problems) == 4 and "no summary" in problems


def test_every_method_option_is_owned_or_shared() -> None:
    unowned = {f.name for f in dataclasses.fields(MethodConfig) if option_owners(f.name) is None}
    assert unowned == SHARED_OPTIONS
    assert option_owners("prompt_encoder_hidden") == ("p_tuning", "prefix_tuning")  # longest prefix wins
    assert option_owners("prompt_virtual_tokens") == ("prompt_tuning", "p_tuning", "prefix_tuning")


def test_reference_follows_what_the_method_trains() -> None:
    copies = {name for name, spec in METHOD_SPECS.items() if spec.reference == "frozen_copy"}
    assert copies == {"full", "freeze"}
    assert {name for name, spec in METHOD_SPECS.items() if spec.needs_padded_rows} == {
        "prompt_tuning",
        "p_tuning",
        "prefix_tuning",
    }


def _hooks(tmp_path: Path, model: object, method: MethodConfig) -> dict:
    from transformers import TrainingArguments

    cfg = RunConfig(method=method, train={"output_dir": str(tmp_path)})
    args = TrainingArguments(output_dir=str(tmp_path), report_to="none")
    return trainer_hooks(cfg, model, args)


def test_adalora_gets_its_callback_and_lora_plus_its_optimizer(tiny_model_dir: Path, tmp_path: Path) -> None:
    adalora = MethodConfig(name="adalora", lora_rank=4, adalora_target_rank=2)
    hooks = _hooks(tmp_path, prepared(tiny_model_dir, adalora), adalora)
    assert any(isinstance(c, AdaLoraCallback) for c in hooks["callbacks"])
    assert hooks["optimizers"] == (None, None) and hooks["after_final_save"] is None
    loraplus = MethodConfig(name="lora", lora_rank=2, loraplus_lr_ratio=16.0)
    hooks = _hooks(tmp_path, prepared(tiny_model_dir, loraplus), loraplus)
    assert hooks["optimizers"][0] is not None
    assert not any(isinstance(c, AdaLoraCallback) for c in hooks["callbacks"])


def test_pissa_conversion_is_a_final_save_hook_not_a_model_attribute(tiny_model_dir: Path, tmp_path: Path) -> None:
    pissa = MethodConfig(name="lora", lora_rank=4, lora_init="pissa")
    model = prepared(tiny_model_dir, pissa)
    before = set(vars(model))
    hooks = _hooks(tmp_path / "run", model, pissa)
    assert set(vars(model)) == before  # nothing rides on the model until the final save
    out = tmp_path / "final"
    model.save_pretrained(str(out))
    hooks["after_final_save"](str(out))
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["r"] == 8 and config["init_lora_weights"] is True  # rank 2r, a plain LoRA for the original base
    plain = MethodConfig(name="lora", lora_rank=4)
    assert _hooks(tmp_path / "plain", prepared(tiny_model_dir, plain), plain)["after_final_save"] is None


def test_methods_without_hooks_get_the_trainer_defaults(tiny_model_dir: Path, tmp_path: Path) -> None:
    full = MethodConfig(name="full")
    hooks = _hooks(tmp_path, prepared(tiny_model_dir, full), full)
    defaults = MethodHooks()
    assert hooks["optimizers"] == defaults.optimizers and hooks["after_final_save"] is None
    assert len(hooks["callbacks"]) == 1  # the JSONL log only
