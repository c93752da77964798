"""Accelerators the estimate knows: memory and dense 16-bit peak FLOP/s (the MFU denominator).

Peaks are the vendors' dense bf16/fp16 tensor-core figures without sparsity, as LLaMA-Factory's cal_mfu.py uses them
(V100 has no bf16: its fp16 peak). Memory is per device.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lmforge.utils.errors import ConfigError


@dataclass(frozen=True)
class Device:
    name: str
    memory_bytes: float
    peak_flops: float  # dense 16-bit FLOP/s
    bf16: bool = True


GB = 1e9
GIB = 2**30
DEVICES = {
    "h100": Device("h100", 80 * GB, 989e12),
    "h800": Device("h800", 80 * GB, 989e12),
    "h200": Device("h200", 141 * GB, 989e12),
    "a100": Device("a100", 80 * GB, 312e12),
    "a800": Device("a800", 80 * GB, 312e12),
    "l40s": Device("l40s", 48 * GB, 362e12),
    "a10": Device("a10", 24 * GB, 125e12),
    "4090": Device("4090", 24 * GB, 165e12),
    "v100": Device("v100", 32 * GB, 125e12, bf16=False),
}
DEFAULT_MFU = 0.4  # assumed until --measure calibrates it on the device


def device(name: str | None) -> Device | None:
    if name is None:
        return None
    key = name.lower().replace("nvidia", "").replace("-", "").replace(" ", "")
    for known, dev in DEVICES.items():
        if known in key:
            return dev
    raise ConfigError(f"--gpu {name!r}: unknown device; known: {', '.join(DEVICES)}")


def parse_bytes(text: str) -> float:
    """'80GB', '80GiB', '24G', '512MB' -> bytes."""
    match = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)(i?)B?\s*", text, re.IGNORECASE)
    if not match:
        raise ConfigError(f"cannot read a memory size from {text!r}; use e.g. 80GB or 24GiB")
    number, unit, binary = match.groups()
    power = "KMGT".find(unit.upper()) + 1 if unit else 0
    return float(number) * (1024 if binary else 1000) ** power


def human(n: float) -> str:
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f} B"
