"""Cross-field rules on a loaded RunConfig. One small named function per rule, each with a test."""

from __future__ import annotations

from collections.abc import Callable

from lmforge.config.schema import DATA_FORMATS, METHODS, STAGES, RunConfig
from lmforge.utils.errors import ConfigError, did_you_mean


def check_stage_known(cfg: RunConfig) -> None:
    if cfg.stage not in STAGES:
        raise ConfigError(
            f"stage: unknown stage {cfg.stage!r}{did_you_mean(cfg.stage, STAGES)}; valid: {', '.join(STAGES)}"
        )


def check_method_known(cfg: RunConfig) -> None:
    if cfg.method.name not in METHODS:
        raise ConfigError(
            f"method.name: unknown method {cfg.method.name!r}{did_you_mean(cfg.method.name, METHODS)}; "
            f"valid: {', '.join(METHODS)}"
        )


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


def check_lora_only_options(cfg: RunConfig) -> None:
    if cfg.model.adapter_name_or_path and cfg.method.name != "lora":
        raise ConfigError(f"model.adapter_name_or_path needs method.name: lora (got {cfg.method.name!r})")


def check_half_precision_needs_autocast(cfg: RunConfig) -> None:
    """full/freeze keep trainable weights in fp32 for stable updates, so half-precision weights need autocast."""
    half = {"bfloat16": "bf16", "float16": "fp16"}.get(cfg.model.dtype)
    if half and cfg.method.name in ("full", "freeze") and not cfg.train.get(half):
        raise ConfigError(
            f"model.dtype: {cfg.model.dtype} with method.name: {cfg.method.name} trains fp32 copies of the "
            f"weights; set train.{half}: true (mixed precision) or model.dtype: float32/auto"
        )


RL_STAGES = ("ppo", "grpo")


def check_rl_reward_given(cfg: RunConfig) -> None:
    rl = cfg.rl
    if cfg.stage in RL_STAGES and not (rl.reward_model or rl.reward_funcs or rl.judge):
        raise ConfigError(
            f"stage {cfg.stage} needs a reward: set rl.reward_model (a stage rm output folder), rl.reward_funcs "
            f"(e.g. [lmforge.rl.builtin:exact_match]) or rl.judge (an OpenAI-compatible endpoint)"
        )


def check_rl_sampling(cfg: RunConfig) -> None:
    rl = cfg.rl
    if cfg.stage not in RL_STAGES:
        return
    if cfg.stage == "grpo" and rl.num_generations < 2:
        raise ConfigError(f"rl.num_generations must be at least 2 for grpo (the group), got {rl.num_generations}")
    if rl.num_generations < 1 or rl.max_new_tokens < 1 or rl.ppo_epochs < 1:
        raise ConfigError("rl.num_generations, rl.max_new_tokens and rl.ppo_epochs must be at least 1")
    if rl.temperature <= 0:
        raise ConfigError(f"rl.temperature must be > 0 for sampled rollouts, got {rl.temperature}")
    if cfg.data.val_size or cfg.data.eval_datasets:
        raise ConfigError(f"stage {cfg.stage} has no evaluation split; unset data.val_size and data.eval_datasets")


RULES: list[Callable[[RunConfig], None]] = [
    check_stage_known,
    check_method_known,
    check_model_given,
    check_datasets_given,
    check_output_dir_given,
    check_lengths,
    check_packing_options,
    check_streaming_needs_max_steps,
    check_interleave_probs,
    check_lora_only_options,
    check_half_precision_needs_autocast,
    check_rl_reward_given,
    check_rl_sampling,
]


def check_config(cfg: RunConfig) -> None:
    """Run every rule; the first violation raises a ConfigError naming the options involved."""
    for rule in RULES:
        rule(cfg)


# --- preference stages (rm, dpo, kto, orpo, simpo) ---
PREFERENCE_STAGES = ("rm", "dpo", "kto", "orpo", "simpo")
_WEIGHT_ADAPTERS = ("lora", "qlora", "loha", "lokr", "adalora", "vera", "ia3", "oft")


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
    """Only dpo and kto have a reference model; an explicit reference folder replaces the frozen copy of
    full/freeze (with adapters the reference is the adapter-disabled or SFT-adapter model)."""
    pref = cfg.pref
    if (pref.precompute_ref_log_probs or pref.reference_model) and cfg.stage not in ("dpo", "kto"):
        key = "precompute_ref_log_probs" if pref.precompute_ref_log_probs else "reference_model"
        raise ConfigError(f"pref.{key} needs stage dpo or kto (stage {cfg.stage} has no reference model)")
    if pref.reference_model and cfg.method.name not in ("full", "freeze"):
        raise ConfigError(
            f"pref.reference_model needs method.name full or freeze; with {cfg.method.name} the reference is the "
            "adapter-disabled model (or the SFT adapter in model.adapter_name_or_path)"
        )


def check_preference_batches(cfg: RunConfig) -> None:
    """Preference batches are padding-free pair rows built in memory: no packing, streaming or prompt methods."""
    if cfg.stage not in PREFERENCE_STAGES:
        return
    for key, value in (("data.packing", cfg.data.packing), ("data.streaming", cfg.data.streaming)):
        if value:
            raise ConfigError(f"{key} is not supported by stage {cfg.stage} (pairs are batched padding-free)")
    if cfg.method.name not in ("full", "freeze", *_WEIGHT_ADAPTERS):
        raise ConfigError(
            f"method.name: {cfg.method.name} prepends virtual tokens per padded row; stage {cfg.stage} batches "
            f"samples padding-free in one row; use full, freeze or a weight adapter ({', '.join(_WEIGHT_ADAPTERS)})"
        )
    if cfg.data.train_on_prompt:
        raise ConfigError(f"data.train_on_prompt does not apply to stage {cfg.stage}: only responses are scored")


RULES.extend([check_pref_loss_options, check_reference_options, check_preference_batches])
