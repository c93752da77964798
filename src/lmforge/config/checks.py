"""Cross-field rules on a loaded RunConfig. One small named function per rule, each with a test."""

from __future__ import annotations

import dataclasses
import importlib.util
from collections.abc import Callable

from lmforge.config.methods import METHOD_SPECS, method_spec, methods_of_kind, option_owners
from lmforge.config.schema import DATA_FORMATS, STAGES, MethodConfig, RunConfig
from lmforge.config.stages import STAGE_SPECS, stage_spec
from lmforge.utils.errors import ConfigError, did_you_mean


def check_stage_known(cfg: RunConfig) -> None:
    if cfg.stage not in STAGES:
        raise ConfigError(
            f"stage: unknown stage {cfg.stage!r}{did_you_mean(cfg.stage, STAGES)}; valid: {', '.join(STAGES)}"
        )


def check_method_known(cfg: RunConfig) -> None:
    method_spec(cfg.method.name)  # raises, listing the valid names


def check_model_given(cfg: RunConfig) -> None:
    if not cfg.model.name_or_path:
        raise ConfigError("model.name_or_path is required (a local model folder or a hub id)")


def check_datasets_given(cfg: RunConfig) -> None:
    if not cfg.data.datasets:
        raise ConfigError("data.datasets is required: catalogue names or inline {path:, format:} entries")
    for i, entry in enumerate(cfg.data.datasets):
        if isinstance(entry, dict) and entry.get("format", "alpaca") not in DATA_FORMATS:
            raise ConfigError(
                f"data.datasets[{i}].format: {entry['format']!r} is not one of {', '.join(DATA_FORMATS)}"
            )


def check_output_dir_given(cfg: RunConfig) -> None:
    if not cfg.output_dir:
        raise ConfigError("train.output_dir is required")


def check_lengths(cfg: RunConfig) -> None:
    if cfg.data.cutoff_len < 2:
        raise ConfigError(f"data.cutoff_len must be at least 2, got {cfg.data.cutoff_len}")
    if cfg.data.val_size < 0:
        raise ConfigError(f"data.val_size must be >= 0, got {cfg.data.val_size}")


def check_packing_options(cfg: RunConfig) -> None:
    if cfg.data.packing and cfg.model.attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
        raise ConfigError(
            f"data.packing needs an attention kernel that can isolate packed samples (sdpa, eager, "
            f"flash_attention_2); model.attn_implementation is {cfg.model.attn_implementation!r}"
        )


def check_streaming_needs_max_steps(cfg: RunConfig) -> None:
    if cfg.data.streaming and int(cfg.train.get("max_steps", -1)) <= 0:
        raise ConfigError("data.streaming needs train.max_steps > 0 (a stream has no known length)")


def check_interleave_probs(cfg: RunConfig) -> None:
    probs = cfg.data.interleave_probs
    if probs is None:
        return
    if cfg.data.mix_strategy == "concat":
        raise ConfigError("data.interleave_probs is set but data.mix_strategy is concat; use interleave_under/over")
    if len(probs) != len(cfg.data.datasets):
        raise ConfigError(f"data.interleave_probs has {len(probs)} values for {len(cfg.data.datasets)} datasets")
    if abs(sum(probs) - 1.0) > 1e-6:
        raise ConfigError(f"data.interleave_probs must sum to 1, got {sum(probs)}")


def check_adapter_continues(cfg: RunConfig) -> None:
    if cfg.model.adapter_name_or_path and not method_spec(cfg.method.name).continues_adapter:
        able = " or ".join(s.name for s in METHOD_SPECS.values() if s.continues_adapter)
        raise ConfigError(f"model.adapter_name_or_path needs method.name: {able} (got {cfg.method.name!r})")


def check_method_options_apply(cfg: RunConfig) -> None:
    """An option changed from its default but read only by another method is a mistake, not a no-op."""
    defaults = MethodConfig()
    for fld in dataclasses.fields(MethodConfig):
        if getattr(cfg.method, fld.name) == getattr(defaults, fld.name):
            continue
        owners = option_owners(fld.name)
        if owners is not None and cfg.method.name not in owners:
            raise ConfigError(
                f"method.{fld.name} is set but method.name is {cfg.method.name!r}; it applies to {', '.join(owners)}"
            )


def check_method_values(cfg: RunConfig) -> None:
    """The method's own rule for its option values (AdaLoRA's rank budget)."""
    check = method_spec(cfg.method.name).check
    if check is not None:
        check(cfg.method)


def check_prompt_methods_padded(cfg: RunConfig) -> None:
    """PEFT prepends virtual tokens per batch row; a padding-free or packed row holds many samples, so they would
    share one prompt and attend across sample boundaries."""
    if method_spec(cfg.method.name).needs_padded_rows and (cfg.data.padding_free or cfg.data.packing):
        raise ConfigError(
            f"method.name: {cfg.method.name} puts virtual tokens in front of every batch row, so each row must be "
            "one sample: set data.padding_free: false and data.packing: false (padded batches)"
        )


# train.optim names that need a package transformers does not bring
OPTIMIZER_PACKAGES = {
    "galore": ("galore_torch", "galore-torch", "pip install 'lmforge[galore]'"),
    "apollo": ("apollo_torch", "apollo-torch", "pip install apollo-torch"),
}


def check_optimizer_installed(cfg: RunConfig) -> None:
    optim = str(cfg.train.get("optim", ""))
    for prefix, (module, package, install) in OPTIMIZER_PACKAGES.items():
        if optim.startswith(prefix) and importlib.util.find_spec(module) is None:
            raise ConfigError(f"train.optim: {optim} needs the {package} package, which is not installed ({install})")
        if optim.startswith(prefix) and not cfg.train.get("optim_target_modules"):
            raise ConfigError(
                f"train.optim: {optim} needs train.optim_target_modules (which weights get low-rank gradient "
                "projection), e.g. [attn, mlp]"
            )


def check_half_precision_needs_autocast(cfg: RunConfig) -> None:
    """full/freeze keep trainable weights in fp32 for stable updates, so half-precision weights need autocast."""
    half = {"bfloat16": "bf16", "float16": "fp16"}.get(cfg.model.dtype)
    if half and method_spec(cfg.method.name).trains_model_weights and not cfg.train.get(half):
        raise ConfigError(
            f"model.dtype: {cfg.model.dtype} with method.name: {cfg.method.name} trains fp32 copies of the "
            f"weights; set train.{half}: true (mixed precision) or model.dtype: float32/auto"
        )


def check_training_numbers(cfg: RunConfig) -> None:
    """Values transformers only rejects after the data and model are loaded (or never), caught before."""
    train = cfg.train
    positive = ("per_device_train_batch_size", "per_device_eval_batch_size", "gradient_accumulation_steps")
    for key in positive:
        if key in train and int(train[key]) < 1:
            raise ConfigError(f"train.{key} must be at least 1, got {train[key]}")
    if float(train.get("learning_rate", 1.0)) < 0:
        raise ConfigError(f"train.learning_rate must be >= 0, got {train['learning_rate']}")
    if "num_train_epochs" in train and float(train["num_train_epochs"]) <= 0 and int(train.get("max_steps", -1)) <= 0:
        epochs = train["num_train_epochs"]
        raise ConfigError(f"train.num_train_epochs must be > 0 (or set train.max_steps), got {epochs}")
    for key in ("warmup_ratio", "weight_decay", "max_grad_norm"):
        if float(train.get(key, 0.0)) < 0:
            raise ConfigError(f"train.{key} must be >= 0, got {train[key]}")


def check_adapter_numbers(cfg: RunConfig) -> None:
    method = cfg.method
    if method.lora_rank < 1:
        raise ConfigError(f"method.lora_rank must be at least 1, got {method.lora_rank}")
    if method.lora_alpha is not None and method.lora_alpha <= 0:
        raise ConfigError(f"method.lora_alpha must be > 0, got {method.lora_alpha}")
    if not 0 <= method.lora_dropout < 1:
        raise ConfigError(f"method.lora_dropout must be in [0, 1), got {method.lora_dropout}")
    if method.prompt_virtual_tokens < 1:
        raise ConfigError(f"method.prompt_virtual_tokens must be at least 1, got {method.prompt_virtual_tokens}")


# train.report_to integrations whose package transformers does not bring: {name: (module, pip extra)}
LOGGER_PACKAGES = {"wandb": ("wandb", "wandb"), "swanlab": ("swanlab", "swanlab")}


def check_loggers_installed(cfg: RunConfig) -> None:
    report_to = cfg.train.get("report_to") or []
    for name in [report_to] if isinstance(report_to, str) else report_to:
        module, extra = LOGGER_PACKAGES.get(str(name), (None, None))
        if module and importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"train.report_to: {name} needs the {module} package, which is not installed "
                f"(pip install 'lmforge[{extra}]'), or drop it from train.report_to"
            )


def check_rl_reward_given(cfg: RunConfig) -> None:
    rl = cfg.rl
    if stage_spec(cfg.stage).is_online_rl and not (rl.reward_model or rl.reward_funcs or rl.judge):
        raise ConfigError(
            f"stage {cfg.stage} needs a reward: set rl.reward_model (a stage rm output folder), rl.reward_funcs "
            f"(e.g. [lmforge.rl.builtin:exact_match]) or rl.judge (an OpenAI-compatible endpoint)"
        )


def check_rl_sampling(cfg: RunConfig) -> None:
    rl = cfg.rl
    if not stage_spec(cfg.stage).is_online_rl:
        return
    if cfg.stage == "grpo" and rl.num_generations < 2:
        raise ConfigError(f"rl.num_generations must be at least 2 for grpo (the group), got {rl.num_generations}")
    if rl.num_generations < 1 or rl.max_new_tokens < 1 or rl.ppo_epochs < 1:
        raise ConfigError("rl.num_generations, rl.max_new_tokens and rl.ppo_epochs must be at least 1")
    if not 0 <= rl.max_missing_rewards <= 1:
        raise ConfigError(f"rl.max_missing_rewards is a fraction of the batch in [0, 1], got {rl.max_missing_rewards}")
    if rl.temperature <= 0:
        raise ConfigError(f"rl.temperature must be > 0 for sampled rollouts, got {rl.temperature}")
    if cfg.data.val_size or cfg.data.eval_datasets:
        raise ConfigError(f"stage {cfg.stage} has no evaluation split; unset data.val_size and data.eval_datasets")
    if cfg.train.get("deepspeed"):
        raise ConfigError(
            f"train.deepspeed is not supported with stage {cfg.stage}: rollouts are sampled with the unwrapped model, "
            "which sharded (ZeRO-3) weights do not allow; use DDP (torchrun) instead"
        )


RULES: list[Callable[[RunConfig], None]] = [
    check_stage_known,
    check_method_known,
    check_model_given,
    check_datasets_given,
    check_output_dir_given,
    check_training_numbers,
    check_adapter_numbers,
    check_loggers_installed,
    check_lengths,
    check_packing_options,
    check_streaming_needs_max_steps,
    check_interleave_probs,
    check_adapter_continues,
    check_method_options_apply,
    check_method_values,
    check_prompt_methods_padded,
    check_optimizer_installed,
    check_half_precision_needs_autocast,
    check_rl_reward_given,
    check_rl_sampling,
]


def check_config(cfg: RunConfig) -> None:
    """Run every rule; the first violation raises a ConfigError naming the options involved."""
    for rule in RULES:
        rule(cfg)


# --- preference stages (the stage table's pair and kto stages) ---


def check_pref_loss_options(cfg: RunConfig) -> None:
    """pref.loss picks the DPO variant; label smoothing is defined for the sigmoid losses only (DPO, SimPO)."""
    pref = cfg.pref
    if pref.loss != "sigmoid" and cfg.stage != "dpo":
        raise ConfigError(f"pref.loss: {pref.loss!r} is a dpo loss; stage {cfg.stage} has its own (unset pref.loss)")
    if pref.label_smoothing and not (cfg.stage == "simpo" or (cfg.stage == "dpo" and pref.loss == "sigmoid")):
        raise ConfigError(
            f"pref.label_smoothing needs stage dpo with pref.loss: sigmoid, or stage simpo "
            f"(got stage {cfg.stage}, pref.loss {pref.loss})"
        )
    if not 0 <= pref.label_smoothing < 0.5:
        raise ConfigError(f"pref.label_smoothing must be in [0, 0.5), got {pref.label_smoothing}")
    if pref.beta <= 0:
        raise ConfigError(f"pref.beta must be > 0, got {pref.beta}")


def check_reference_options(cfg: RunConfig) -> None:
    """Only preference stages with a reference model read pref's reference options; an explicit reference folder
    replaces the frozen copy of full/freeze (with adapters the reference is the adapter-disabled or SFT-adapter
    model)."""
    pref = cfg.pref
    spec = stage_spec(cfg.stage)
    if (pref.precompute_ref_log_probs or pref.reference_model) and not (
        spec.is_preference and spec.reference != "none"
    ):
        key = "precompute_ref_log_probs" if pref.precompute_ref_log_probs else "reference_model"
        with_ref = [s.name for s in STAGE_SPECS.values() if s.is_preference and s.reference != "none"]
        raise ConfigError(f"pref.{key} needs stage {' or '.join(with_ref)} (stage {cfg.stage} has no reference model)")
    if pref.reference_model and method_spec(cfg.method.name).reference != "frozen_copy":
        copies = " or ".join(s.name for s in METHOD_SPECS.values() if s.reference == "frozen_copy")
        raise ConfigError(
            f"pref.reference_model needs method.name {copies}; with {cfg.method.name} the reference is the "
            "adapter-disabled model (or the SFT adapter in model.adapter_name_or_path)"
        )


def check_preference_batches(cfg: RunConfig) -> None:
    """Preference batches are padding-free pair rows built in memory: no packing, streaming or prompt methods."""
    if not stage_spec(cfg.stage).is_preference:
        return
    for key, value in (("data.packing", cfg.data.packing), ("data.streaming", cfg.data.streaming)):
        if value:
            raise ConfigError(f"{key} is not supported by stage {cfg.stage} (pairs are batched padding-free)")
    if method_spec(cfg.method.name).needs_padded_rows:
        raise ConfigError(
            f"method.name: {cfg.method.name} prepends virtual tokens per padded row; stage {cfg.stage} batches "
            f"samples padding-free in one row; use full, freeze or a weight adapter "
            f"({', '.join(methods_of_kind('adapter'))})"
        )
    if cfg.data.train_on_prompt:
        raise ConfigError(f"data.train_on_prompt does not apply to stage {cfg.stage}: only responses are scored")


RULES.extend([check_pref_loss_options, check_reference_options, check_preference_batches])
