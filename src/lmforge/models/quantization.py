"""bitsandbytes quantisation of the frozen base weights (method `qlora`), and its inverse for export.

bitsandbytes is an optional extra (`pip install lmforge[qlora]`): importing it costs about a second, so it is only
imported here, when a qlora run or export needs it, never at `lmforge` start-up.
"""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path
from typing import Any, cast

import torch
import yaml
from torch import nn

from lmforge.config.config_loading import build_dataclass
from lmforge.config.methods import method_spec
from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

RUN_SNAPSHOT = "lmforge_config.yaml"  # written by training next to the adapter (training/run_dir.py)

INSTALL_HINT = "pip install 'lmforge[qlora]' (or pip install bitsandbytes)"


def bitsandbytes_available() -> bool:
    return importlib.util.find_spec("bitsandbytes") is not None


def require_bitsandbytes(what: str) -> None:
    """A clear error naming the package and how to install it, instead of an ImportError deep in transformers."""
    if not bitsandbytes_available():
        raise ConfigError(f"{what} needs the bitsandbytes package, which is not installed: {INSTALL_HINT}")


def compute_dtype(method_cfg: MethodConfig, model_cfg: ModelConfig) -> torch.dtype:
    """The matmul dtype of 4-bit layers: explicit, or the model's own dtype."""
    from lmforge.models.model_loading import resolve_dtype

    name = model_cfg.dtype if method_cfg.quant_compute_dtype == "auto" else method_cfg.quant_compute_dtype
    return resolve_dtype(name)


def quantization_config(method_cfg: MethodConfig | None, model_cfg: ModelConfig) -> Any:
    """transformers' BitsAndBytesConfig for a qlora run; None for every other method."""
    if method_cfg is None or method_spec(method_cfg.name).quantised_variant_of is None:
        return None
    require_bitsandbytes("method.name: qlora")
    from transformers import BitsAndBytesConfig

    if method_cfg.quant_bits == 8:
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=method_cfg.quant_type,
        bnb_4bit_use_double_quant=method_cfg.quant_double,
        bnb_4bit_compute_dtype=compute_dtype(method_cfg, model_cfg),
        bnb_4bit_quant_storage=torch.uint8,
    )


def keep_cpu_weights_unpacked(model: Any) -> int:
    """Stop bitsandbytes (0.50) from repacking 4-bit weights for its AVX512-BF16 CPU kernel on the first eval
    forward: the repacking reshapes by in_features // 64 and fails for widths that are not a multiple of the
    64-value block (e.g. an MLP of 1376), it rewrites the stored weights in place (so dequantising afterwards
    reads a different layout), and the kernel rounds activations to bf16. Training never uses that path, so eval
    and export then see exactly the weights training saw. Drop this when bitsandbytes packs only valid shapes."""
    import bitsandbytes as bnb

    layers = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    for layer in layers:
        layer.support_avx512bf16_for_cpu = False
    return len(layers)


def dequantized_weights(quantized_model: Any) -> dict[str, torch.Tensor]:
    """name -> fp32 weight of every bitsandbytes linear layer, exactly as the quantised model computes with it.

    This is dequant(W4) (or dequant(W8)): the base the adapter was trained against (QUALITY C11). Call it before
    the model's first eval forward, or after `keep_cpu_weights_unpacked` (load_model calls it)."""
    import bitsandbytes as bnb
    from peft.utils.integrations import dequantize_module_weight

    weights = {}
    for name, module in quantized_model.named_modules():
        if isinstance(module, bnb.nn.Linear4bit):
            # in fp32, not the quant state's storage dtype (often bf16), which would round the values again
            state = copy.copy(cast(Any, module.weight).quant_state)  # a bitsandbytes Params4bit
            state.dtype = torch.float32
            weights[f"{name}.weight"] = bnb.functional.dequantize_4bit(module.weight.data, state).cpu()
        elif isinstance(module, bnb.nn.Linear8bitLt):
            weights[f"{name}.weight"] = dequantize_module_weight(module).detach().float().cpu()
    return weights


def load_dequantized_into(model: nn.Module, weights: dict[str, torch.Tensor]) -> int:
    """Overwrite `model`'s linear weights with the dequantised ones; returns how many were replaced."""
    params = dict(model.named_parameters())
    missing = [name for name in weights if name not in params]
    if missing:
        raise ConfigError(f"the quantised model has layers the base model lacks: {', '.join(missing[:5])}")
    with torch.no_grad():
        for name, weight in weights.items():
            params[name].copy_(weight.to(params[name].dtype))
    return len(weights)


def quantized_training(adapter: str) -> MethodConfig | None:
    """The qlora settings of the run that produced `adapter`, from its config snapshot; None for other runs."""
    snapshot = Path(adapter).expanduser() / RUN_SNAPSHOT
    if not snapshot.is_file():
        return None
    raw = yaml.safe_load(snapshot.read_text(encoding="utf-8")) or {}
    method = build_dataclass(MethodConfig, raw.get("method") or {}, "method")
    return method if method_spec(method.name).quantised_variant_of is not None else None


def use_dequantized_base(base_model: Any, base: str, method: MethodConfig) -> int:
    """Replace `base_model`'s linear weights by dequant(quant(W)) as qlora training loaded them."""
    from lmforge.models.model_loading import load_model, load_tokenizer

    model_cfg = ModelConfig(name_or_path=base, dtype="float32", attn_implementation="eager")
    quantized = load_model(model_cfg, load_tokenizer(model_cfg), method)
    count = load_dequantized_into(base_model, dequantized_weights(quantized))
    logger.info("qlora adapter: its base is the %d dequantised linear weights it was trained on", count)
    return count
