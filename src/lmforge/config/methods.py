"""The method table: every tuning method declared once, PEFT-style, with what the rest of lmforge derives from it.

A row says what the method trains (its kind, from which the reference model of dpo/kto/ppo/grpo follows), which
`method.*` options it owns (the config checks refuse them under another method), how it prepares the model and
which training hooks it needs (callbacks, optimizer groups, a finishing step after the final save). The behaviour
lives in the method's own module under `lmforge.methods`; the config package sits below it, so the row names it
as "module:function", imported when a run uses the method (`lmforge --help` never imports torch).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from lmforge.utils.errors import ConfigError

if TYPE_CHECKING:
    from lmforge.config.schema import MethodConfig

#: full: every weight trains; partial: some of the model's own weights train (freeze); adapter: new weights next
#: to the frozen ones (LoRA and the other PEFT adapters); prompt: virtual tokens in front of every batch row
MethodKind = Literal["full", "partial", "adapter", "prompt"]
#: the reference model of dpo/kto/ppo/grpo: a frozen copy of the initial weights (or pref.reference_model), or the
#: same model with its adapter switched off (or the SFT adapter in model.adapter_name_or_path)
ReferenceKind = Literal["frozen_copy", "adapter_disabled"]


@dataclass(frozen=True)
class MethodSpec:
    name: str
    summary: str
    kind: MethodKind
    prepare: str  # "module:function": (model, MethodConfig, ModelConfig) -> the model to train
    options: tuple[str, ...] = ()  # MethodConfig field names (or prefixes) only the methods listing them read
    hooks: str | None = None  # "module:function": (MethodConfig, trained model, TrainingArguments) -> MethodHooks
    check: Callable[[MethodConfig], None] | None = None  # option values this method cannot work with
    continues_adapter: bool = False  # model.adapter_name_or_path: continue training a saved adapter
    quantised_variant_of: str | None = None  # this method is that one on a bitsandbytes-quantised base

    @property
    def trains_model_weights(self) -> bool:
        """The model's own weights change (kept as fp32 masters; a reference is a separate frozen copy)."""
        return self.kind in ("full", "partial")

    @property
    def reference(self) -> ReferenceKind:
        return "frozen_copy" if self.trains_model_weights else "adapter_disabled"

    @property
    def needs_padded_rows(self) -> bool:
        """PEFT prepends virtual tokens per batch row, so a row must hold one sample (no padding-free, packing)."""
        return self.kind == "prompt"

    def load(self, field: Literal["prepare", "hooks"]) -> Any:
        """The function a "module:function" field names (None when the method has no hooks)."""
        target = getattr(self, field)
        if target is None:
            return None
        module, function = target.split(":")
        return getattr(importlib.import_module(module), function)


def _check_adalora_budget(method: MethodConfig) -> None:
    """AdaLoRA prunes from lora_rank down to adalora_target_rank; with nothing to prune its allocator fails."""
    if not 0 < method.adalora_target_rank < method.lora_rank:
        raise ConfigError(
            f"method.adalora_target_rank ({method.adalora_target_rank}) must be between 1 and "
            f"method.lora_rank - 1 ({method.lora_rank - 1}): adalora starts at lora_rank and prunes down to it"
        )


_LORA_OPTIONS = ("lora_bias", "lora_use_", "lora_init", "loraplus_")
_PROMPT = "lmforge.methods.prompt"
_ADAPTERS = "lmforge.methods.peft_adapters"

METHOD_SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec("full", "every weight trains (fp32 masters)", "full", "lmforge.methods.full:prepare"),
        MethodSpec(
            "freeze", "the last/first N layers (or chosen modules) train", "partial", "lmforge.methods.freeze:prepare",
            options=("freeze_",),
        ),
        MethodSpec(
            "lora", "low-rank adapters (DoRA, rsLoRA, PiSSA/OLoRA/LoftQ init, LoRA+)", "adapter",
            "lmforge.methods.lora:prepare", options=_LORA_OPTIONS, hooks="lmforge.methods.lora:training_hooks",
            continues_adapter=True,
        ),
        MethodSpec(
            "qlora", "LoRA on a 4/8-bit quantised base", "adapter", "lmforge.methods.lora:prepare_qlora",
            options=(*_LORA_OPTIONS, "quant_"), hooks="lmforge.methods.lora:training_hooks", continues_adapter=True,
            quantised_variant_of="lora",
        ),
        MethodSpec(
            "prompt_tuning", "learned virtual token embeddings", "prompt", f"{_PROMPT}:prepare_prompt_tuning",
            options=("prompt_", "prompt_init_text"),
        ),
        MethodSpec(
            "p_tuning", "virtual tokens from a prompt encoder", "prompt", f"{_PROMPT}:prepare_p_tuning",
            options=("prompt_", "prompt_encoder"),
        ),
        MethodSpec(
            "prefix_tuning", "learned key/value prefixes in every layer", "prompt", f"{_PROMPT}:prepare_prefix_tuning",
            options=("prompt_", "prompt_encoder", "prefix_"),
        ),
        MethodSpec("ia3", "learned scaling vectors", "adapter", f"{_ADAPTERS}:prepare_ia3"),
        MethodSpec("loha", "low-rank Hadamard product adapters", "adapter", f"{_ADAPTERS}:prepare_loha"),
        MethodSpec("lokr", "low-rank Kronecker product adapters", "adapter", f"{_ADAPTERS}:prepare_lokr"),
        MethodSpec(
            "adalora", "LoRA with a rank budget pruned during training", "adapter", f"{_ADAPTERS}:prepare_adalora",
            options=("adalora_",), hooks=f"{_ADAPTERS}:adalora_hooks", check=_check_adalora_budget,
        ),
        MethodSpec("vera", "shared random projections, trained scalings", "adapter", f"{_ADAPTERS}:prepare_vera"),
        MethodSpec(
            "oft", "orthogonal block rotations of the weights", "adapter", f"{_ADAPTERS}:prepare_oft",
            options=("oft_",),
        ),
    )
}  # fmt: skip


def method_spec(name: str) -> MethodSpec:
    """The spec of a method name; an unknown name is a ConfigError listing the valid ones."""
    from lmforge.utils.errors import did_you_mean

    try:
        return METHOD_SPECS[name]
    except KeyError:
        raise ConfigError(
            f"method.name: unknown method {name!r}{did_you_mean(name, METHOD_SPECS)}; valid: {', '.join(METHOD_SPECS)}"
        ) from None


def option_owners(option: str) -> tuple[str, ...] | None:
    """The methods that read a MethodConfig field (by its longest declared prefix); None for shared options."""
    prefixes = {prefix for spec in METHOD_SPECS.values() for prefix in spec.options if option.startswith(prefix)}
    if not prefixes:
        return None
    longest = max(prefixes, key=len)
    return tuple(spec.name for spec in METHOD_SPECS.values() if longest in spec.options)


def methods_of_kind(*kinds: MethodKind) -> tuple[str, ...]:
    return tuple(spec.name for spec in METHOD_SPECS.values() if spec.kind in kinds)
