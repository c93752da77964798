"""LoRA via PEFT (and its variants DoRA, rsLoRA, PiSSA/OLoRA/LoftQ init), QLoRA on a bitsandbytes-quantised base,
or continued training of an existing adapter; its training hooks are LoRA+'s optimizer groups and, for PiSSA/OLoRA,
the conversion of the saved adapter for the original base weights."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods.method_hooks import FinalSaveHook, MethodHooks, peft_task_type
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

ADAPTER_WEIGHTS = "adapter_model.safetensors"
CONVERTIBLE_INITS = ("pissa", "olora")
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
    return get_peft_model(model, lora_config(model, method_cfg))


def training_hooks(method_cfg: MethodConfig, model: Any, args: Any, policy: Any) -> MethodHooks:
    """LoRA+ optimizer groups (when asked) and the PiSSA/OLoRA conversion after the final save."""
    return MethodHooks(
        optimizers=loraplus_optimizer(method_cfg, model, args), after_final_save=original_base_conversion(policy)
    )


def loraplus_optimizer(method_cfg: MethodConfig, model: Any, args: Any) -> tuple[Any, Any]:
    """(optimizer, scheduler) for the Trainer: LoRA+ groups when asked, else (None, None) = Trainer's default.

    LoRA+ (Hayou et al. 2024) trains B with lr x loraplus_lr_ratio; the optimizer class and its arguments are the
    ones `train.optim` selects, so LoRA+ composes with adamw_torch, adamw_8bit, etc."""
    if method_cfg.loraplus_lr_ratio is None:
        return None, None
    from peft.optimizers import create_loraplus_optimizer
    from transformers import Trainer

    optimizer_cls, kwargs = Trainer.get_optimizer_cls_and_kwargs(args, model)
    if "optim_target_modules" in str(args.optim) or "galore" in str(args.optim):
        raise ConfigError("method.loraplus_lr_ratio cannot be combined with train.optim: galore_* (both set groups)")
    kwargs = {k: v for k, v in kwargs.items() if k != "lr"}
    optimizer = create_loraplus_optimizer(
        model,
        optimizer_cls,
        lr=args.learning_rate,
        loraplus_lr_ratio=method_cfg.loraplus_lr_ratio,
        loraplus_weight_decay=args.weight_decay,
        **kwargs,
    )
    logger.info("LoRA+: lr %g for A, %g for B", args.learning_rate, args.learning_rate * method_cfg.loraplus_lr_ratio)
    return optimizer, None


def original_base_conversion(policy: Any) -> FinalSaveHook | None:
    """PiSSA/OLoRA move the adapter's initial part out of the base weights (W_res = W - B0 A0), so the trained
    adapter only fits that residual base. Keeping (A0, B0), saved now before any step, lets the final save be
    rewritten as a plain LoRA (rank 2r) for the *original* base, which chat, serve and export load. The
    initialisation is read from the live PEFT config: an adapter loaded to continue training was already converted
    (PEFT saves it with init_lora_weights true) and is left as it is."""
    config = getattr(policy, "peft_config", {}).get("default")
    if config is None or str(config.init_lora_weights) not in CONVERTIBLE_INITS:
        return None
    initial = tempfile.TemporaryDirectory(prefix="lmforge-lora-init-")  # removed after the conversion (or at exit)
    init, config.init_lora_weights = config.init_lora_weights, True  # saved as a plain LoRA, as PEFT documents
    policy.save_pretrained(initial.name)
    config.init_lora_weights = init

    def convert(output_dir: str) -> None:
        with initial:
            policy.save_pretrained(output_dir, path_initial_model_for_weight_conversion=initial.name)
        logger.info("saved the adapter converted for the original base weights (rank 2r; PiSSA/OLoRA residual undone)")

    return convert


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
