"""Run-directory callbacks: a machine-readable log line per logging event (`trainer_log.jsonl`)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

LOG_FILE = "trainer_log.jsonl"
_RENAMED = {"learning_rate": "lr"}


class JsonlLogCallback(TrainerCallback):
    """Append one JSON object per log to `trainer_log.jsonl` (rank 0 only).

    Each line holds step, max_steps (the run's total, for progress displays), epoch, loss, lr, grad_norm,
    num_input_tokens_seen, elapsed seconds (since this process started training) plus whatever else was logged
    (eval_loss, ...). On resume, lines after the checkpoint's step
    are dropped first, so the file reads as one run with the replayed steps logged once.
    """

    def __init__(self, output_dir: str) -> None:
        self.path = Path(output_dir) / LOG_FILE
        self._start = time.time()

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = time.time()
        if state.is_world_process_zero:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            truncate_log_after(self.path, state.global_step)

    def on_log(self, args, state, control, logs: dict[str, Any] | None = None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        record: dict[str, Any] = {"step": state.global_step, "max_steps": state.max_steps, "epoch": state.epoch}
        record.update({_RENAMED.get(k, k): v for k, v in logs.items() if k != "epoch"})
        record["num_input_tokens_seen"] = state.num_input_tokens_seen
        record["elapsed"] = round(time.time() - self._start, 3)
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


def read_log(path: str | Path) -> list[dict[str, Any]]:
    file = Path(path)
    if file.is_dir():
        file = file / LOG_FILE
    if not file.is_file():
        return []
    return [json.loads(line) for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_log_after(path: Path, step: int) -> None:
    """Keep only records up to `step` (a fresh run keeps none)."""
    if not path.is_file():
        return
    kept = [r for r in read_log(path) if step > 0 and r.get("step", 0) <= step]
    path.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
