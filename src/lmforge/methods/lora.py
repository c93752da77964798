"""LoRA via PEFT: low-rank adapters on linear layers, or continue training an existing adapter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"


def prepare(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Wrap the model in a PeftModel whose only trainable weights are the adapters (and modules_to_save)."""
    from peft import LoraConfig, PeftModel, get_peft_model

    if model_cfg.adapter_name_or_path:
        folder = check_adapter_folder(model_cfg.adapter_name_or_path)
        logger.info("lora: continuing training of the adapter in %s (its own rank and targets apply)", folder)
        return PeftModel.from_pretrained(model, str(folder), is_trainable=True)
    targets = lora_targets(model, method_cfg.lora_target)
    _check_modules_to_save(model, method_cfg.modules_to_save)
    config = LoraConfig(
        task_type="CAUSAL_LM",
        r=method_cfg.lora_rank,
        lora_alpha=method_cfg.lora_alpha if method_cfg.lora_alpha is not None else 2 * method_cfg.lora_rank,
        lora_dropout=method_cfg.lora_dropout,
        target_modules=targets,
        modules_to_save=list(method_cfg.modules_to_save) or None,
    )
    return get_peft_model(model, config)


def lora_targets(model: Any, target: Any) -> str | list[str]:
    """PEFT's "all-linear" (every nn.Linear but the output head) for `all`, else the checked list of names."""
    names = [t.strip() for t in target.split(",")] if isinstance(target, str) else list(target)
    if names == ["all"]:
        return "all-linear"
    output = model.get_output_embeddings()
    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear) and m is not output}
    unknown = [n for n in names if n not in linear]
    if unknown:
        raise ConfigError(
            f"method.lora_target: no linear layer named {', '.join(map(repr, unknown))}; "
            f"available: all, {', '.join(sorted(linear))}"
        )
    return names


def _check_modules_to_save(model: Any, names: list[str]) -> None:
    available = {n.rsplit(".", 1)[-1] for n, _ in model.named_modules() if n}
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(
            f"method.modules_to_save: no module named {', '.join(map(repr, unknown))}; "
            f"available: {', '.join(sorted(available))}"
        )


def check_adapter_folder(path: str) -> Path:
    """An adapter folder with safetensors weights; pickle weights (adapter_model.bin) are refused (QUALITY D1)."""
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        raise ConfigError(f"model.adapter_name_or_path: {str(folder)!r} is no PEFT adapter (no adapter_config.json)")
    if not (folder / ADAPTER_WEIGHTS).is_file():
        found = sorted(p.name for p in folder.iterdir() if p.name.startswith("adapter_model"))
        refused = f" (found {', '.join(found)}: pickle files can run code on load; refused)" if found else ""
        raise ConfigError(f"model.adapter_name_or_path: {str(folder)!r} has no {ADAPTER_WEIGHTS}{refused}")
    return folder
