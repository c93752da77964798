"""Stop on SIGTERM/SIGINT with a sealed checkpoint instead of losing the work since the last one.

Schedulers (Slurm, Kubernetes) send SIGTERM before they kill a job, and Ctrl-C sends SIGINT. The first such
signal asks the Trainer to save a checkpoint at the end of the current optimizer step and stop; `--resume`
continues from it. A second signal stops at once (the default behaviour), for a run that must die now.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from transformers import TrainerCallback

from lmforge.utils.errors import LmforgeError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)
SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunInterrupted(LmforgeError):
    """The run stopped on a signal after saving a checkpoint; the exit status is the shell's 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum


class GracefulStop(TrainerCallback):
    """Installs the handlers while training runs; on the first signal, save and stop at the step's end."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def on_train_begin(self, args, state, control, **kwargs):
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be installed from the main thread
        for signum in SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_train_end(self, args, state, control, **kwargs):
        self.restore()

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # second signal: stop now, as without lmforge
            self.restore()
            signal.raise_signal(signum)
            return
        self.received = signum
        logger.warning(
            "%s received: saving a checkpoint at the end of this step, then stopping (send it again to stop now)",
            signal.Signals(signum).name,
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self._agreed_stop(args):
            control.should_save = True
            control.should_training_stop = True
        return control

    def _agreed_stop(self, args: Any) -> bool:
        """Every rank stops at the same step: under DDP a signal seen by any rank stops all of them."""
        if args.world_size <= 1:
            return self.received is not None
        import torch
        import torch.distributed as dist

        flag = torch.tensor([0 if self.received is None else self.received], device=args.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        if flag.item() and self.received is None:
            self.received = int(flag.item())
        return bool(flag.item())

    def interruption(self, step: int, output_dir: str) -> RunInterrupted | None:
        """The error to end the command with after the checkpoint was saved, or None when no signal came."""
        if self.received is None:
            return None
        name = signal.Signals(self.received).name
        return RunInterrupted(
            f"stopped by {name} after step {step}; checkpoint-{step} is saved in {output_dir}. "
            "Continue with the same command plus --resume",
            self.received,
        )
