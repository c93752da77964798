"""The stage table: every training stage declared once, with what the rest of lmforge derives from it.

The config schema (valid names, `--help`), the config checks, data reading/encoding (by data kind) and the
training arguments (how tokens are counted) all read these specs; adding a stage means one row here, one module in
`lmforge.stages` with its `run`, and an encoder only if it reads a new kind of data. The config package sits below
the stages, so `run` is named as "module:function" and imported when the stage runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from transformers import TrainingArguments

    from lmforge.config.schema import RunConfig

#: the rows a stage reads: documents (text), conversations (chat), preference pairs (pairs), judged single
#: examples (kto), prompts to sample from (prompts); one dataset format family and one encoder per kind
DataKind = Literal["text", "chat", "pairs", "kto", "prompts"]
#: none: no reference model; required: always one; with_kl: one only when the KL coefficient (rl.beta) is > 0
ReferenceUse = Literal["none", "required", "with_kl"]
StageRun = Callable[["RunConfig", "TrainingArguments", bool], dict[str, float]]


@dataclass(frozen=True)
class StageSpec:
    name: str
    summary: str  # shown by `lmforge train --help` and the config docs
    data: DataKind
    run: str  # "module:function" with the signature of StageRun
    reference: ReferenceUse = "none"

    @property
    def is_preference(self) -> bool:
        """Offline preference stages: pair or KTO rows, batched padding-free, a preference objective."""
        return self.data in ("pairs", "kto")

    @property
    def is_online_rl(self) -> bool:
        """Stages that sample rollouts from prompts and score them with rewards."""
        return self.data == "prompts"

    @property
    def needs_template(self) -> bool:
        """Everything but plain documents is rendered with a chat template."""
        return self.data != "text"

    @property
    def token_count(self) -> str:
        """TrainingArguments.include_num_input_tokens_seen: pair rows hold no padding (count all tokens), rollouts
        count their own tokens (no), padded or padding-free text/chat batches depend on the data options (auto)."""
        return {"pairs": "all", "kto": "all", "prompts": "no"}.get(self.data, "auto")

    def needs_reference(self, kl_coef: float) -> bool:
        return self.reference == "required" or (self.reference == "with_kl" and kl_coef > 0)

    def load_run(self) -> StageRun:
        module, function = self.run.split(":")
        run: StageRun = getattr(importlib.import_module(module), function)
        return run


STAGE_SPECS: dict[str, StageSpec] = {
    spec.name: spec
    for spec in (
        StageSpec("pt", "continued pretraining on plain text", "text", "lmforge.stages.pt:run"),
        StageSpec("sft", "supervised fine-tuning on conversations", "chat", "lmforge.stages.sft:run"),
        StageSpec("ppo", "online RL with a value head and a reward", "prompts", "lmforge.stages.ppo:run", "required"),
        StageSpec("grpo", "online RL with group-relative advantages", "prompts", "lmforge.stages.grpo:run", "with_kl"),
        StageSpec("rm", "reward model on preference pairs", "pairs", "lmforge.stages.rm:run"),
        StageSpec("dpo", "direct preference optimisation", "pairs", "lmforge.stages.dpo:run", "required"),
        StageSpec("kto", "Kahneman-Tversky optimisation", "kto", "lmforge.stages.kto:run", "required"),
        StageSpec("orpo", "odds-ratio preference optimisation", "pairs", "lmforge.stages.orpo:run"),
        StageSpec("simpo", "simple preference optimisation", "pairs", "lmforge.stages.simpo:run"),
    )
}


def stage_spec(name: str) -> StageSpec:
    """The spec of a stage name that the config checks have accepted."""
    return STAGE_SPECS[name]


def stages_help() -> str:
    """`pt (continued pretraining on plain text) | sft (...) | ...` for the CLI and config help."""
    return " | ".join(f"{spec.name} ({spec.summary})" for spec in STAGE_SPECS.values())
