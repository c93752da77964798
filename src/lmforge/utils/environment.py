"""`lmforge env`: the versions and devices a bug report needs (as `llamafactory-cli env` prints them)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = (
    "lmforge",
    "torch",
    "transformers",
    "peft",
    "datasets",
    "accelerate",
    "tokenizers",
    "safetensors",
    "bitsandbytes",
    "deepspeed",
    "vllm",
    "wandb",
    "swanlab",
)


def package_versions() -> dict[str, str]:
    """Installed distributions by name (read from their metadata: nothing is imported)."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def devices() -> list[str]:
    import torch

    found = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    threads = torch.get_num_threads()
    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    return [*found, f"cpu ({threads} torch threads{cuda} build)" if cuda else f"cpu ({threads} torch threads)"]


def environment_report() -> str:
    lines = [f"- platform: {platform.platform()}", f"- python: {platform.python_version()}"]
    lines += [f"- {name}: {version}" for name, version in package_versions().items()]
    lines += [f"- device: {device}" for device in devices()]
    return "\n".join(lines)
