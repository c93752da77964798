"""Stage orpo: odds-ratio preference optimisation (reference-free; SFT loss + odds-ratio term).

tokenizer -> template -> pairs -> policy -> PreferenceTrainer -> final adapter/model + metrics (see docs/alignment.md)
"""

from __future__ import annotations

from lmforge.config.schema import RunConfig


def run(cfg: RunConfig, resume: bool) -> dict[str, float]:
    from lmforge.alignment import setup

    return setup.run_reference_free(cfg, resume)  # pairs -> policy -> objective of cfg.stage -> trainer
