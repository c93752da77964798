"""LmforgeTrainer: transformers.Trainer with atomic checkpoints.

Why a subclass: `Trainer._save_checkpoint` writes `checkpoint-N/` in place, file by file, and then rotates old
checkpoints (`save_total_limit`) by globbing `checkpoint-*`. There is no completion marker, so a crash mid-save leaves
a half-written folder that `resume_from_checkpoint=True` happily picks as the newest, and rotation may already have
deleted the last good one. No callback runs between the writes, so the only hook is overriding this method. We keep
Hugging Face's own writers (`save_model`, `_save_optimizer_and_scheduler`, `_save_scaler`, `_save_rng_state`,
`TrainerState.save_to_json`) and only change where they write and what happens after (see `checkpoints.py`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, cast

from transformers import Trainer
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import SaveStrategy

from lmforge.training.checkpoints import STAGING_SUFFIX, rotate_checkpoints, seal_checkpoint
from lmforge.training.faults import FaultCallback, FaultPlan, fault_plan_from_env, maybe_kill_during_save

TRAINER_STATE_NAME = "trainer_state.json"


class LmforgeTrainer(Trainer):
    """A Trainer whose checkpoints are staged, hashed, sealed with a marker and renamed into place."""

    #: the loss is a token likelihood, so the final evaluation reports perplexity (a preference loss is none)
    loss_is_likelihood = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fault_plan: FaultPlan | None = fault_plan_from_env()
        if self.fault_plan is not None:
            self.add_callback(FaultCallback(self.fault_plan))

    def drop_training_only_parts(self) -> None:
        """Before the final save: remove what trained alongside the model but is no part of the result."""

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        step = self.state.global_step
        run_dir = Path(self._get_output_dir(trial=trial))
        final = run_dir / f"checkpoint-{step}"
        staging = run_dir / f"checkpoint-{step}{STAGING_SUFFIX}"
        if self.args.should_save and staging.exists():
            shutil.rmtree(staging)
        self.accelerator.wait_for_everyone()
        if self.hp_search_backend is None and trial is None:
            self.store_flos()

        self.save_model(str(staging), _internal_call=True)
        maybe_kill_during_save(self.fault_plan, step, "partial_model", staging)
        self._record_best_checkpoint(run_dir, step)
        if not self.args.save_only_model:
            self._save_optimizer_and_scheduler(str(staging))
            self._save_scaler(str(staging))
            self._save_rng_state(str(staging))  # every rank writes its own rng_state_<rank>.pth
        maybe_kill_during_save(self.fault_plan, step, "after_optimizer", staging)
        if self.args.should_save:
            self._export_callback_states()
            self.state.save_to_json(os.path.join(staging, TRAINER_STATE_NAME))
        self.accelerator.wait_for_everyone()  # all ranks' files are in staging before it is sealed
        maybe_kill_during_save(self.fault_plan, step, "before_marker", staging)

        if self.args.should_save:
            seal_checkpoint(staging, final, step)
            if self.args.push_to_hub:
                self._push_from_checkpoint(str(final))
            rotate_checkpoints(run_dir, self.args.save_total_limit, keep=self.state.best_model_checkpoint)
        self.accelerator.wait_for_everyone()

    def _record_best_checkpoint(self, run_dir: Path, step: int) -> None:
        """As upstream: remember the best checkpoint's folder once it exists (the current one counts as existing)."""
        best = self.state.best_global_step
        if not best or self.args.save_strategy not in (SaveStrategy.STEPS, SaveStrategy.EPOCH, SaveStrategy.BEST):
            return
        best_dir = run_dir / f"checkpoint-{best}"
        if best == step or best_dir.exists():
            self.state.best_model_checkpoint = str(best_dir)

    def _export_callback_states(self) -> None:
        """As upstream: store stateful callbacks (e.g. early stopping) in the trainer state."""
        # TrainerState annotates stateful_callbacks as a list; its __post_init__ makes it a dict by class name
        stateful = cast(dict[str, Any], self.state.stateful_callbacks)
        for cb in [*self.callback_handler.callbacks, self.control]:
            if not isinstance(cb, ExportableState):
                continue
            name = cb.__class__.__name__
            if isinstance(stateful.get(name), list):
                stateful[name].append(cb.state())
            else:
                stateful[name] = cb.state()
