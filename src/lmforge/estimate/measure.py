"""`lmforge estimate --measure`: run a few real training steps of the config and record what they cost.

Peak memory is what the estimate predicts: bytes held by tensors. On CUDA that is
`torch.cuda.max_memory_allocated`; on CPU, PyTorch keeps no such counter, so the profiler's allocation events
(every CPU tensor allocation and free, with its size) are summed in order and their running maximum is taken.
Step time comes from the run's own log (train_runtime / steps); the first step (warm-up) is included, so several
steps give a steadier figure.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch

from lmforge.config.schema import RunConfig


@dataclass
class Measured:
    peak_bytes: int  # tensors alive at the worst moment of the run (model load included)
    steps: int
    seconds_per_step: float
    tokens_per_step: float  # input tokens per optimizer step, as the trainer counted them
    device: str


class _Peak:
    peak: int = 0


@contextmanager
def peak_tensor_memory(device: str) -> Iterator[_Peak]:
    """Track the highest number of bytes held by tensors on `device` ("cpu" or "cuda") inside the block."""
    result = _Peak()
    gc.collect()  # tensors of earlier work freed inside the window would count as negative allocations
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        yield result
        torch.cuda.synchronize()
        result.peak = int(torch.cuda.max_memory_allocated())
        return
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        yield result
    total = peak = 0
    for event in prof.profiler.kineto_results.events():
        if event.name() == "[memory]" and event.device_type() == torch.autograd.DeviceType.CPU:
            total += event.nbytes()
            peak = max(peak, total)
    result.peak = peak


def measure_run(cfg: RunConfig, steps: int = 3) -> Measured:
    """Train `steps` optimizer steps of `cfg` in a scratch output folder (nothing saved) and measure them."""
    from lmforge.train import run_training

    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="lmforge-measure-") as scratch:
        train = dict(cfg.train) | {
            "output_dir": scratch,
            "max_steps": steps,
            "save_strategy": "no",
            "eval_strategy": "no",
            "report_to": "none",
            "logging_steps": 1,
        }
        run = dataclasses.replace(cfg, train=train, data=dataclasses.replace(cfg.data, val_size=0.0))
        start = time.perf_counter()
        with peak_tensor_memory(device) as peak:
            run_training(run)
        elapsed = time.perf_counter() - start
        state = json.loads((Path(scratch) / "trainer_state.json").read_text(encoding="utf-8"))
    runtime = next((r["train_runtime"] for r in state["log_history"] if "train_runtime" in r), elapsed)
    tokens = float(state.get("num_input_tokens_seen") or 0)
    return Measured(peak.peak, steps, runtime / steps, tokens / steps, device)
