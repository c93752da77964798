"""Stage simpo: simple preference optimisation (reference-free, length-normalised, target margin gamma).

tokenizer -> template -> pairs -> policy -> PreferenceTrainer -> final adapter/model + metrics (see docs/alignment.md)
"""

from __future__ import annotations

from transformers import TrainingArguments

from lmforge.config.schema import RunConfig


def run(cfg: RunConfig, args: TrainingArguments, resume: bool) -> dict[str, float]:
    from lmforge.alignment import preference_setup as setup

    return setup.run_reference_free(cfg, args, resume)  # pairs -> policy -> objective of cfg.stage -> trainer
