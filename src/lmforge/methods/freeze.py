"""Partial fine-tuning: train the last (or first) N decoder layers, optionally only some sub-modules of them,
plus extra modules such as embed_tokens or lm_head; everything else stays frozen."""

from __future__ import annotations

import fnmatch
from typing import Any

from torch import nn

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.methods.full import upcast_trainable
from lmforge.utils.errors import ConfigError


def prepare(model: Any, method_cfg: MethodConfig, model_cfg: ModelConfig) -> Any:
    """Freeze everything, then unfreeze the selected layers' modules and the extra modules."""
    layers_name, layers = decoder_layers(model)
    chosen = _chosen_layers(len(layers), method_cfg.freeze_trainable_layers)
    modules = list(method_cfg.freeze_trainable_modules)
    if modules != ["all"]:
        _check_names(modules, _inner_module_names(layers[0]), "method.freeze_trainable_modules", " inside a layer")
    extras = list(method_cfg.freeze_extra_modules)
    # modules neither inside the layer stack nor containing it (so "model" cannot unfreeze everything)
    outside = {
        n: m for n, m in model.named_modules() if n and not _under(n, layers_name) and not _under(layers_name, n)
    }
    _check_names(extras, {n.rsplit(".", 1)[-1] for n in outside} | set(outside), "method.freeze_extra_modules", "")

    model.requires_grad_(False)
    for index in chosen:
        for name, param in layers[index].named_parameters():
            if modules == ["all"] or set(modules) & set(name.split(".")[:-1]):
                param.requires_grad_(True)
    for name, module in outside.items():
        if name in extras or name.rsplit(".", 1)[-1] in extras:
            module.requires_grad_(True)
    unfreeze_matching(model, list(method_cfg.freeze_trainable_patterns))
    upcast_trainable(model)
    return model


def unfreeze_matching(model: Any, patterns: list[str]) -> None:
    """Train every parameter whose full name matches a glob; a pattern matching nothing is an error (a typo)."""
    params = dict(model.named_parameters())
    for pattern in patterns:
        hits = [name for name in params if fnmatch.fnmatchcase(name, pattern)]
        if not hits:
            examples = ", ".join(list(params)[:4])
            raise ConfigError(
                f"method.freeze_trainable_patterns: {pattern!r} matches no parameter name (names look like {examples})"
            )
        for name in hits:
            params[name].requires_grad_(True)


def decoder_layers(model: Any) -> tuple[str, nn.ModuleList]:
    """The dotted name and ModuleList of the model's repeated decoder blocks."""
    count = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return name, module
    raise ConfigError(f"freeze: cannot find the {count} decoder layers of {type(model).__name__}")


def _chosen_layers(count: int, n: int) -> list[int]:
    """The last n layers, or the first -n for negative n."""
    if abs(n) > count:
        raise ConfigError(f"method.freeze_trainable_layers: {n} but the model has only {count} layers")
    return list(range(count - n, count)) if n >= 0 else list(range(-n))


def _inner_module_names(layer: nn.Module) -> set[str]:
    return {part for name, _ in layer.named_modules() if name for part in name.split(".") if not part.isdigit()}


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _check_names(names: list[str], available: set[str], key: str, where: str) -> None:
    unknown = [n for n in names if n not in available]
    if unknown:
        raise ConfigError(
            f"{key}: no module named {', '.join(map(repr, unknown))}{where}; available: {', '.join(sorted(available))}"
        )
