"""Prompt-style methods through PEFT: the base model stays frozen and learned vectors are put in front of every row.

- prompt_tuning: virtual token embeddings at the input (random, or initialised from a text's embeddings).
- p_tuning: virtual tokens produced by a prompt encoder (MLP or LSTM) over learned inputs (P-tuning v1).
- prefix_tuning: learned key/value prefixes in every layer (deep prompts, P-tuning v2), optionally through an MLP.

PEFT prepends the virtual tokens per batch row, so one row must hold one sample: these methods train on padded
batches (`data.padding_free: false`, enforced by the config checks), never on concatenated padding-free rows.
None of them is mergeable into the base weights: they are used as adapters (chat/serve attach them).
"""

from __future__ import annotations

from typing import Any

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods.method_hooks import peft_task_type


def _common(model: Any, method_cfg: MethodConfig) -> dict[str, Any]:
    return {"task_type": peft_task_type(model), "num_virtual_tokens": method_cfg.prompt_virtual_tokens}


def prepare_prompt_tuning(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Virtual token embeddings; with prompt_init_text they start as that text's token embeddings (repeated)."""
    from peft import PromptTuningConfig, get_peft_model

    extra: dict[str, Any] = {"prompt_tuning_init": "RANDOM"}
    if method_cfg.prompt_init_text:
        extra = {
            "prompt_tuning_init": "TEXT",
            "prompt_tuning_init_text": method_cfg.prompt_init_text,
            "tokenizer_name_or_path": model_cfg.tokenizer_name_or_path or model_cfg.name_or_path,
        }
    return get_peft_model(model, PromptTuningConfig(**_common(model, method_cfg), **extra))


def prepare_p_tuning(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Virtual tokens from a trainable MLP/LSTM prompt encoder."""
    from peft import PromptEncoderConfig, get_peft_model

    hidden = method_cfg.prompt_encoder_hidden or model.config.hidden_size
    config = PromptEncoderConfig(
        **_common(model, method_cfg),
        encoder_reparameterization_type=method_cfg.prompt_encoder.upper(),
        encoder_hidden_size=hidden,
    )
    return get_peft_model(model, config)


def prepare_prefix_tuning(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Per-layer key/value prefixes (a KV-cache prefix at inference), optionally reparametrised by an MLP."""
    from peft import PrefixTuningConfig, get_peft_model

    hidden = method_cfg.prompt_encoder_hidden or model.config.hidden_size
    config = PrefixTuningConfig(
        **_common(model, method_cfg), prefix_projection=method_cfg.prefix_projection, encoder_hidden_size=hidden
    )
    return get_peft_model(model, config)
