"""LmforgeTrainer: transformers.Trainer with atomic checkpoints.

Why a subclass: `Trainer._save_checkpoint` writes `checkpoint-N/` in place, file by file, and then rotates old
checkpoints (`save_total_limit`) by globbing `checkpoint-*`. There is no completion marker, so a crash mid-save leaves
a half-written folder that `resume_from_checkpoint=True` happily picks as the newest, and rotation may already have
deleted the last good one. No callback runs between the writes, so the only hook is overriding this method. We keep
Hugging Face's own writers (`save_model`, `TrainerState.save_to_json`) and only change where they write and what
happens after (see `checkpoints.py`); the optimizer, scheduler, scaler and RNG state are written without pickle
(`resume_state.py`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from transformers import Trainer
from transformers.trainer_callback import ExportableState
from transformers.trainer_utils import SaveStrategy

from lmforge.training import resume_state
from lmforge.training.checkpoints import STAGING_SUFFIX, rotate_checkpoints, seal_checkpoint
from lmforge.training.faults import FaultCallback, FaultPlan, fault_plan_from_env, maybe_kill_during_save
from lmforge.training.signals import GracefulStop
from lmforge.utils.errors import CheckpointError

TRAINER_STATE_NAME = "trainer_state.json"


class LmforgeTrainer(Trainer):
    """A Trainer whose checkpoints are staged, hashed, sealed with a marker and renamed into place."""

    #: the loss is a token likelihood, so the final evaluation reports perplexity (a preference loss is none)
    loss_is_likelihood = True

    def __init__(self, *args: Any, after_final_save: Callable[[str], None] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: the tuning method's step after the final save (see methods/method_hooks.py), run by save_final_model
        self.after_final_save = after_final_save
        self.graceful_stop = GracefulStop()
        self.add_callback(self.graceful_stop)
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
            self._save_rng_state(str(staging))  # every rank writes its own rng_state_<rank>
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

    # --- resume state without pickle (QUALITY D1) ---------------------------------------------------------------
    def _own_format(self) -> bool:
        """DeepSpeed and FSDP save and load their sharded state themselves."""
        return not (self.is_deepspeed_enabled or self.is_fsdp_enabled)

    def _save_optimizer_and_scheduler(self, output_dir: str) -> None:
        if not self._own_format():
            super()._save_optimizer_and_scheduler(output_dir)
            return
        if self.args.should_save:
            optimizer, scheduler = self._optimizer_and_scheduler()
            resume_state.save_state(output_dir, resume_state.OPTIMIZER, optimizer.state_dict())
            resume_state.save_state(output_dir, resume_state.SCHEDULER, scheduler.state_dict())

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        if checkpoint is None or not self._own_format():
            super()._load_optimizer_and_scheduler(checkpoint)
            return
        resume_state.refuse_pickled_state(checkpoint)
        device = self.args.device if self.args.world_size > 1 and self.args.device.type != "cpu" else "cpu"
        optimizer_state = resume_state.load_state(checkpoint, resume_state.OPTIMIZER, device)
        if optimizer_state is not None:
            scheduler_state = resume_state.load_state(checkpoint, resume_state.SCHEDULER)
            if scheduler_state is None:
                raise CheckpointError(f"{checkpoint} has the optimizer state but no {resume_state.SCHEDULER} state")
            optimizer, scheduler = self._optimizer_and_scheduler()
            optimizer.load_state_dict(optimizer_state)
            scheduler.load_state_dict(scheduler_state)

    def _optimizer_and_scheduler(self) -> tuple[Any, Any]:
        """Both exist once training has started, the only time checkpoints are written or read."""
        if self.optimizer is None or self.lr_scheduler is None:
            raise RuntimeError("the optimizer and scheduler are created when training starts")
        return self.optimizer, self.lr_scheduler

    def _save_scaler(self, output_dir: str) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is not None and self.args.should_save:
            resume_state.save_state(output_dir, resume_state.SCALER, scaler.state_dict())

    def _load_scaler(self, checkpoint: str | None) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        if scaler is None or not checkpoint:
            return
        state = resume_state.load_state(checkpoint, resume_state.SCALER)
        if state is not None:
            scaler.load_state_dict(state)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """As upstream, with the TrainingArguments as JSON instead of the pickle `training_args.bin`."""
        super()._save(output_dir, state_dict=state_dict)
        if not self.args.should_save:  # only the writing rank (rank 0) saves, as upstream
            return
        folder = Path(output_dir or self.args.output_dir or ".")
        (folder / "training_args.bin").unlink(missing_ok=True)
        (folder / "training_args.json").write_text(self.args.to_json_string(), encoding="utf-8")

    def _rng_name(self) -> str:
        return resume_state.RNG if self.args.world_size <= 1 else f"{resume_state.RNG}_{self.args.process_index}"

    def _save_rng_state(self, output_dir: str) -> None:
        os.makedirs(output_dir, exist_ok=True)  # a rank may get here before rank 0 created the folder
        resume_state.save_state(output_dir, self._rng_name(), resume_state.rng_state())

    def _load_rng_state(self, checkpoint: str | None) -> None:
        state = resume_state.load_state(checkpoint, self._rng_name()) if checkpoint else None
        if state is not None:
            resume_state.set_rng_state(state)

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
