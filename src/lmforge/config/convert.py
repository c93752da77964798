"""LLaMA-Factory's flat YAML (`model_name_or_path: ...`, `finetuning_type: lora`) to lmforge's sectioned config.

LLaMA-Factory users arrive with flat files; lmforge groups keys in sections. `looks_flat` lets the loader say so
instead of failing on the first key, and `convert` (behind `lmforge convert-config`) rewrites a file: known keys
move to their section, TrainingArguments keys go to `train:`, and anything with no lmforge meaning is listed so
nothing is dropped silently.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from lmforge.utils.errors import ConfigError

# flat key -> dotted lmforge key (values copied as they are)
RENAMED: dict[str, str] = {
    "model_name_or_path": "model.name_or_path",
    "adapter_name_or_path": "model.adapter_name_or_path",
    "trust_remote_code": "model.trust_remote_code",
    "new_special_tokens": "model.new_special_tokens",
    "stage": "stage",
    "template": "data.template",
    "cutoff_len": "data.cutoff_len",
    "max_samples": "data.max_samples",
    "val_size": "data.val_size",
    "packing": "data.packing",
    "mask_history": "data.mask_history",
    "train_on_prompt": "data.train_on_prompt",
    "overwrite_cache": "data.overwrite_cache",
    "streaming": "data.streaming",
    "mix_strategy": "data.mix_strategy",
    "preprocessing_num_workers": "data.num_proc",
    "lora_rank": "method.lora_rank",
    "lora_alpha": "method.lora_alpha",
    "lora_dropout": "method.lora_dropout",
    "use_dora": "method.lora_use_dora",
    "use_rslora": "method.lora_use_rslora",
    "loraplus_lr_ratio": "method.loraplus_lr_ratio",
    "freeze_trainable_layers": "method.freeze_trainable_layers",
    "neftune_noise_alpha": "method.neftune_alpha",
    "pref_beta": "pref.beta",
    "pref_ftx": "pref.sft_weight",
    "simpo_gamma": "pref.simpo_gamma",
    "kto_chosen_weight": "pref.kto_desirable_weight",
    "kto_rejected_weight": "pref.kto_undesirable_weight",
    "reward_model": "rl.reward_model",
    "overwrite_output_dir": "train.overwrite_output_dir",
}
# flat key -> list value (LLaMA-Factory writes lists as comma-separated strings)
LISTS: dict[str, str] = {
    "dataset": "data.datasets",
    "eval_dataset": "data.eval_datasets",
    "interleave_probs": "data.interleave_probs",
    "additional_target": "method.modules_to_save",
    "freeze_trainable_modules": "method.freeze_trainable_modules",
    "freeze_extra_modules": "method.freeze_extra_modules",
}
# keys lmforge does by itself or that only steer LLaMA-Factory's launcher
IMPLIED = {"do_train": "lmforge train always trains", "plot_loss": "lmforge always plots the loss"}
ATTENTION = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager"}
# enough of these at the top level and the file is a flat LLaMA-Factory config
MARKERS = {"model_name_or_path", "finetuning_type", "dataset", "cutoff_len", "do_train", "template"}


def looks_flat(raw: dict[str, Any]) -> bool:
    return len(MARKERS & set(raw)) >= 2


def flat_config_hint(path: str | Path, raw: dict[str, Any]) -> str:
    keys = ", ".join(sorted(MARKERS & set(raw)))
    return (
        f"{path} looks like a flat LLaMA-Factory config ({keys}); lmforge groups keys in sections (model:, data:, "
        f"method:, train:). Convert it with: lmforge convert-config {path} --output NEW.yaml"
    )


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _put(out: dict[str, Any], dotted: str, value: Any) -> None:
    *sections, key = dotted.split(".")
    node = out
    for section in sections:
        node = node.setdefault(section, {})
    node[key] = value


def _special(raw: dict[str, Any], out: dict[str, Any], notes: list[str]) -> set[str]:
    """Keys whose meaning is spread over several lmforge keys; returns the flat keys handled."""
    handlers: dict[str, Callable[[Any], None]] = {}

    def method_name(value: Any) -> None:
        _put(out, "method.name", "qlora" if value == "lora" and raw.get("quantization_bit") else value)

    def quantization(value: Any) -> None:
        _put(out, "method.quant_bits", int(value))
        if raw.get("finetuning_type", "lora") != "lora":
            notes.append("quantization_bit: lmforge quantises only for lora (method qlora)")

    def lora_target(value: Any) -> None:
        _put(out, "method.lora_target", value if value == "all" else _as_list(value))

    def dataset_dir(value: Any) -> None:
        _put(out, "data.dataset_dir", value)
        _put(out, "data.catalog", str(Path(value) / "dataset_info.json"))

    def attention(value: Any) -> None:
        if value in ATTENTION:
            _put(out, "model.attn_implementation", ATTENTION[value])

    def pref_loss(value: Any) -> None:
        if value in ("orpo", "simpo"):  # separate stages in lmforge
            _put(out, "stage", value)
        else:
            _put(out, "pref.loss", value)

    def pissa(value: Any) -> None:
        if value:
            _put(out, "method.lora_init", "pissa")

    handlers |= {"finetuning_type": method_name, "quantization_bit": quantization, "lora_target": lora_target}
    handlers |= {"dataset_dir": dataset_dir, "flash_attn": attention, "pref_loss": pref_loss, "pissa_init": pissa}
    for key, handle in handlers.items():
        if key in raw:
            handle(raw[key])
    if "dataset" in raw and "dataset_dir" not in raw:
        _put(out, "data.catalog", "data/dataset_info.json")  # LLaMA-Factory's default dataset_dir
        notes.append("data.catalog: LLaMA-Factory's default data/dataset_info.json; point it at your copy")
    return set(handlers)


def convert(raw: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The sectioned config and notes on keys that were not carried over (with the reason)."""
    from lmforge.config.config_loading import training_argument_fields

    out: dict[str, Any] = {}
    notes: list[str] = []
    handled = _special(raw, out, notes)
    train_fields = training_argument_fields()
    for key, value in raw.items():
        if key in handled:
            continue
        if key in RENAMED:
            _put(out, RENAMED[key], value)
        elif key in LISTS:
            _put(out, LISTS[key], _as_list(value))
        elif key in IMPLIED:
            notes.append(f"{key}: dropped ({IMPLIED[key]})")
        elif key in train_fields:
            _put(out, f"train.{key}", value)
        else:
            notes.append(f"{key}: {value!r} has no lmforge equivalent; not converted")
    if "template" in raw:
        notes.append("data.template: check that lmforge knows the template name (or use auto)")
    order = ["stage", "model", "data", "method", "pref", "rl", "train"]
    return {k: out[k] for k in order if k in out}, notes


def convert_file(source: str | Path, output: str | Path | None) -> str:
    """Convert a flat LLaMA-Factory YAML file; write it to `output` (refusing to replace a file) or return it."""
    from lmforge.config.config_loading import read_yaml

    raw = read_yaml(source)
    if not looks_flat(raw):
        raise ConfigError(f"{source} does not look like a flat LLaMA-Factory config (no model_name_or_path etc.)")
    converted, notes = convert(raw)
    header = [f"# Converted from the LLaMA-Factory config {source} by `lmforge convert-config`."]
    header += [f"# not converted: {note}" for note in notes]
    text = "\n".join(header) + "\n" + yaml.safe_dump(converted, sort_keys=False, allow_unicode=True)
    if output is None:
        return text
    out = Path(output)
    if out.exists():
        raise ConfigError(f"--output {out} already exists; choose a new file")
    out.write_text(text, encoding="utf-8")
    return text
