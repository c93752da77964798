"""What a tuning method adds to a training run besides preparing the model, and what PEFT wrapping shares.

A method's row in the method table (`lmforge.config.methods`) may name a hooks factory in its own module; the run
scaffolding (`training/run.py`) calls it once per run, for every stage family, and hands the result to the trainer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

#: after_final_save(output_dir): rewrite what the final save wrote (PiSSA/OLoRA: convert for the original base)
FinalSaveHook = Callable[[str], None]


@dataclass
class MethodHooks:
    """Plain Trainer extension points, so LmforgeTrainer's sealed checkpoints and resume keep working unchanged."""

    callbacks: list[TrainerCallback] = field(default_factory=list)
    optimizers: tuple[Any, Any] = (None, None)  # (optimizer, scheduler); (None, None) = the Trainer's default
    after_final_save: FinalSaveHook | None = None  # run on the main process after the final model is saved


#: hooks(method_cfg, model, args, policy): model is what the trainer trains, policy the prepared model inside it
#: (the same object but for PPO's value-head wrapper)
HooksFactory = Callable[[Any, Any, Any, Any], MethodHooks]


def peft_task_type(model: Any) -> str:
    """The PEFT task a model is wrapped for: a scalar-score model (stage rm) gets PEFT's sequence-classification
    wrapper, which has no generation head to look for and keeps the new `score` head trainable and saved."""
    return "SEQ_CLS" if type(model).__name__.endswith("ForSequenceClassification") else "CAUSAL_LM"
