"""Which base an adapter is merged onto, and which adapters cannot be merged at all.

A QLoRA adapter was trained against dequant(quant(W)), not W. Merging it onto the original 16/32-bit weights adds
a correction computed for other weights; merging onto the dequantised weights reproduces what training saw
(unsloth-zoo#810), so that is the default, and the choice is written to lmforge_export.json (QUALITY C11).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import yaml

from lmforge.config.loading import build_dataclass
from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.models.adapters import ADAPTER_CONFIG
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

RUN_SNAPSHOT = "lmforge_config.yaml"  # written by training next to the adapter (training/run_dir.py)
PROMPT_PEFT_TYPES = {"PROMPT_TUNING": "prompt_tuning", "P_TUNING": "p_tuning", "PREFIX_TUNING": "prefix_tuning"}
QloraBase = Literal["dequantized", "original"]


def check_mergeable(adapter: str) -> None:
    """Prompt-style adapters are extra inputs, not weight deltas: there is nothing to merge."""
    config = Path(adapter).expanduser() / ADAPTER_CONFIG
    if not config.is_file():
        return  # attach_adapter reports the missing file
    peft_type = json.loads(config.read_text(encoding="utf-8")).get("peft_type", "")
    if peft_type in PROMPT_PEFT_TYPES:
        raise ConfigError(
            f"{PROMPT_PEFT_TYPES[peft_type]} adapters cannot be merged into the model weights (their virtual tokens "
            f"are inputs, not weight changes); use the adapter folder {adapter!r} directly: lmforge chat/serve "
            "--model BASE --adapter ADAPTER"
        )


def quantized_training(adapter: str) -> MethodConfig | None:
    """The qlora settings of the run that produced `adapter`, from its config snapshot; None for other runs."""
    snapshot = Path(adapter).expanduser() / RUN_SNAPSHOT
    if not snapshot.is_file():
        return None
    raw = yaml.safe_load(snapshot.read_text(encoding="utf-8")) or {}
    method = build_dataclass(MethodConfig, raw.get("method") or {}, "method")
    return method if method.name == "qlora" else None


def describe(method: MethodConfig | None, choice: QloraBase) -> str:
    if method is None:
        return "original"
    if choice == "original":
        return "original (16/32-bit weights; the adapter was trained on quantised ones)"
    if method.quant_bits == 8:
        return "dequantized int8"
    return f"dequantized {method.quant_type}{' double-quant' if method.quant_double else ''}"


def use_dequantized_base(base_model: Any, base: str, method: MethodConfig) -> int:
    """Replace `base_model`'s linear weights by dequant(quant(W)) as qlora training loaded them."""
    from lmforge.models.loading import load_model, load_tokenizer
    from lmforge.models.quantization import dequantized_weights, load_dequantized_into

    model_cfg = ModelConfig(name_or_path=base, dtype="float32", attn_implementation="eager")
    quantized = load_model(model_cfg, load_tokenizer(model_cfg), method)
    count = load_dequantized_into(base_model, dequantized_weights(quantized))
    logger.info(
        "qlora export: merging onto %d dequantised (%s) linear weights", count, describe(method, "dequantized")
    )
    return count
