"""Which base an adapter is merged onto, and which adapters cannot be merged at all.

A QLoRA adapter was trained against dequant(quant(W)), not W. Merging it onto the original 16/32-bit weights adds
a correction computed for other weights; merging onto the dequantised weights reproduces what training saw
(unsloth-zoo#810), so that is the default, and the choice is written to lmforge_export.json (QUALITY C11).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from lmforge.config.schema import MethodConfig
from lmforge.models.adapters import ADAPTER_CONFIG
from lmforge.utils.errors import ConfigError

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


def describe(method: MethodConfig | None, choice: QloraBase) -> str:
    if method is None:
        return "original"
    if choice == "original":
        return "original (16/32-bit weights; the adapter was trained on quantised ones)"
    if method.quant_bits == 8:
        return "dequantized int8"
    return f"dequantized {method.quant_type}{' double-quant' if method.quant_double else ''}"
