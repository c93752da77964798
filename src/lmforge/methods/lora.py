"""LoRA via PEFT (and its variants DoRA, rsLoRA, PiSSA/OLoRA/LoftQ init), QLoRA on a bitsandbytes-quantised base,
or continued training of an existing adapter."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods.method_table import peft_task_type
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
CONVERTIBLE_INITS = ("pissa", "olora")
INITIAL_ADAPTER_ATTR = "_lmforge_initial_adapter"
# our option value -> PEFT's init_lora_weights (True = PEFT's default: Kaiming A, zero B)
LORA_INIT: dict[str, Any] = {
    "default": True,
    "gaussian": "gaussian",
    "pissa": "pissa",
    "olora": "olora",
    "loftq": "loftq",
}


def prepare(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Wrap the model in a PeftModel whose only trainable weights are the adapters (and modules_to_save)."""
    from peft import PeftModel, get_peft_model

    if model_cfg.adapter_name_or_path:
        folder = check_adapter_folder(model_cfg.adapter_name_or_path)
        logger.info("%s: continuing training of the adapter in %s (its own settings apply)", method_cfg.name, folder)
        return PeftModel.from_pretrained(model, str(folder), is_trainable=True)
    peft_model = get_peft_model(model, lora_config(model, method_cfg))
    if method_cfg.lora_init in CONVERTIBLE_INITS:
        _remember_initial_adapter(peft_model)
    return peft_model


def _remember_initial_adapter(peft_model: Any) -> None:
    """PiSSA/OLoRA move the adapter's initial part out of the base weights (W_res = W - B0 A0), so the trained
    adapter only fits that residual base. Keeping (A0, B0) lets the final save convert it into a plain LoRA
    (rank 2r) for the *original* base, which chat, serve and export load."""
    folder = tempfile.mkdtemp(prefix="lmforge-lora-init-")
    config = peft_model.peft_config["default"]
    init, config.init_lora_weights = config.init_lora_weights, True  # saved as a plain LoRA, as PEFT documents
    peft_model.save_pretrained(folder)
    config.init_lora_weights = init
    setattr(peft_model, INITIAL_ADAPTER_ATTR, folder)


def save_for_original_base(model: Any, output_dir: str) -> bool:
    """Re-save a PiSSA/OLoRA adapter converted to apply to the original base weights; False for other models."""
    folder = getattr(model, INITIAL_ADAPTER_ATTR, None)
    if folder is None:
        return False
    model.save_pretrained(output_dir, path_initial_model_for_weight_conversion=folder)
    shutil.rmtree(folder, ignore_errors=True)
    delattr(model, INITIAL_ADAPTER_ATTR)
    logger.info("saved the adapter converted for the original base weights (rank 2r; PiSSA/OLoRA residual undone)")
    return True


def prepare_qlora(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """LoRA on a base that `load_model` quantised: PEFT's k-bit preparation (norms and head in fp32, input grads)."""
    from peft import prepare_model_for_kbit_training

    if not getattr(model, "is_quantized", False):
        raise ConfigError(
            "method.name: qlora needs a model loaded with quantisation; load it with "
            "load_model(model_cfg, tokenizer, method_cfg) (the stages do this)"
        )
    model = prepare_model_for_kbit_training(
        model,
        use_gradient_checkpointing=model_cfg.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},  # as load_model enables it
    )
    return prepare(model, method_cfg, model_cfg)


def lora_config(model: Any, method_cfg: MethodConfig) -> Any:
    """PEFT's LoraConfig from our method options, with names checked against the model."""
    from peft import LoraConfig

    _check_modules_to_save(model, method_cfg.modules_to_save)
    return LoraConfig(
        task_type=peft_task_type(model),
        r=method_cfg.lora_rank,
        lora_alpha=lora_alpha(method_cfg),  # type: ignore[arg-type]  # PEFT says int; alpha / r takes any float
        lora_dropout=method_cfg.lora_dropout,
        target_modules=lora_targets(model, method_cfg.lora_target),
        modules_to_save=list(method_cfg.modules_to_save) or None,
        bias=method_cfg.lora_bias,
        use_dora=method_cfg.lora_use_dora,
        use_rslora=method_cfg.lora_use_rslora,
        init_lora_weights=LORA_INIT[method_cfg.lora_init],
        loftq_config=_loftq_config(model, method_cfg),
    )


def lora_alpha(method_cfg: MethodConfig) -> float:
    return method_cfg.lora_alpha if method_cfg.lora_alpha is not None else 2 * method_cfg.lora_rank


def _loftq_config(model: Any, method_cfg: MethodConfig) -> dict[str, Any]:
    """LoftQ initialises A/B so that quant(W) + BA approximates W; it quantises with bitsandbytes itself, so the
    base must be unquantised (it replaces what qlora's loading would do)."""
    if method_cfg.lora_init != "loftq":
        return {}
    from peft import LoftQConfig

    from lmforge.models.quantization import require_bitsandbytes

    require_bitsandbytes("method.lora_init: loftq")
    if not torch.cuda.is_available():
        raise ConfigError("method.lora_init: loftq needs a CUDA GPU (PEFT's LoftQ quantises the weights on cuda)")
    if getattr(model, "is_quantized", False):
        raise ConfigError(
            "method.lora_init: loftq quantises the base itself and needs an unquantised model: use method.name: "
            "lora with lora_init: loftq (not qlora)"
        )
    return LoftQConfig(loftq_bits=method_cfg.quant_bits)  # type: ignore[return-value]


def lora_targets(model: Any, target: Any, key: str = "method.lora_target") -> str | list[str]:
    """PEFT's "all-linear" (every nn.Linear but the output head) for `all`, else the checked list of names."""
    names = [t.strip() for t in target.split(",")] if isinstance(target, str) else list(target)
    if names == ["all"]:
        return "all-linear"
    output = model.get_output_embeddings()
    linear = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if _is_linear(m) and m is not output}
    unknown = [n for n in names if n not in linear]
    if unknown:
        raise ConfigError(
            f"{key}: no linear layer named {', '.join(map(repr, unknown))}; "
            f"available: all, {', '.join(sorted(linear))}"
        )
    return names


def _is_linear(module: nn.Module) -> bool:
    # bitsandbytes' Linear4bit/Linear8bitLt subclass nn.Linear
    return isinstance(module, nn.Linear)


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
