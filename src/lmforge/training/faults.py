"""Fault injection for crash-recovery tests: SIGKILL this process at a chosen point of training.

Set `LMFORGE_FAULT` to one or more `;`-separated directives:

    kill_after_step=17            after optimizer step 17 is done and its log line (if any) is written
    kill_at_substep=18:2          after micro-batch 2 (1-based) of optimizer step 18, gradients half accumulated
    kill_during_save=20:STAGE     while saving checkpoint-20, at STAGE:
                                    partial_model    model/adapter weights half written (file truncated)
                                    after_optimizer  optimizer + scheduler written, trainer state not yet
                                    before_marker    every file written, completion marker not yet
    signal_after_step=17:TERM     send this process SIGTERM (or INT) at the end of step 17 (graceful stop)

SIGKILL (not an exception) is used so that nothing gets a chance to clean up, as with an OOM kill or a pre-empted
node. This is a test hook, not a feature: when the variable is unset `fault_plan_from_env()` returns None and no
callback or check is installed, so it costs nothing.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from transformers import TrainerCallback

ENV_VAR = "LMFORGE_FAULT"
SAVE_STAGES = ("partial_model", "after_optimizer", "before_marker")


@dataclass(frozen=True)
class FaultPlan:
    kill_after_step: int | None = None
    kill_at_substep: tuple[int, int] | None = None
    kill_during_save: tuple[int, str] | None = None
    signal_after_step: tuple[int, str] | None = None


def _pair(text: str, directive: str) -> tuple[str, str]:
    left, sep, right = text.partition(":")
    if not sep:
        raise ValueError(f"{ENV_VAR}: {directive!r} needs STEP:VALUE")
    return left, right


def parse_fault_plan(spec: str) -> FaultPlan:
    """Parse the `LMFORGE_FAULT` syntax described in the module docstring."""
    fields: dict[str, object] = {}
    for directive in filter(None, (part.strip() for part in spec.split(";"))):
        key, _, value = directive.partition("=")
        if key == "kill_after_step":
            fields[key] = int(value)
        elif key == "kill_at_substep":
            step, micro = _pair(value, directive)
            fields[key] = (int(step), int(micro))
        elif key == "kill_during_save":
            step, stage = _pair(value, directive)
            if stage not in SAVE_STAGES:
                raise ValueError(f"{ENV_VAR}: save stage {stage!r} is not one of {', '.join(SAVE_STAGES)}")
            fields[key] = (int(step), stage)
        elif key == "signal_after_step":
            step, name = _pair(value, directive)
            if name not in ("TERM", "INT"):
                raise ValueError(f"{ENV_VAR}: signal {name!r} is not TERM or INT")
            fields[key] = (int(step), name)
        else:
            raise ValueError(f"{ENV_VAR}: unknown directive {directive!r}")
    return FaultPlan(**fields)  # type: ignore[arg-type]


def fault_plan_from_env() -> FaultPlan | None:
    spec = os.environ.get(ENV_VAR, "")
    return parse_fault_plan(spec) if spec else None


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def truncate_largest_weights(folder: Path) -> None:
    """Simulate a weights file cut off half-way through writing."""
    weights = sorted(folder.rglob("*.safetensors"), key=lambda p: p.stat().st_size)
    if weights:
        with weights[-1].open("r+b") as handle:
            handle.truncate(weights[-1].stat().st_size // 2)
            os.fsync(handle.fileno())


def maybe_kill_during_save(plan: FaultPlan | None, step: int, stage: str, folder: Path) -> None:
    """Called by the checkpoint writer at each stage; kills when the plan names this step and stage."""
    if plan is None or plan.kill_during_save != (step, stage):
        return
    if stage == "partial_model":
        truncate_largest_weights(folder)
    kill_self()


class FaultCallback(TrainerCallback):
    """Kills after a given optimizer step (after logging) or inside a given accumulation window."""

    def __init__(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._micro = 0

    def on_step_begin(self, args, state, control, **kwargs):
        self._micro = 0

    def on_substep_end(self, args, state, control, **kwargs):
        self._micro += 1
        if self.plan.kill_at_substep == (state.global_step + 1, self._micro):
            kill_self()

    def on_step_end(self, args, state, control, **kwargs):
        if self.plan.signal_after_step and self.plan.signal_after_step[0] == state.global_step:
            os.kill(os.getpid(), getattr(signal, f"SIG{self.plan.signal_after_step[1]}"))
        # When this step logs, wait for on_log so the step's log line is on disk first.
        if state.global_step == self.plan.kill_after_step and not control.should_log:
            kill_self()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.global_step == self.plan.kill_after_step and logs and "loss" in logs:
            kill_self()
