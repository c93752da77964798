"""Helpers for integration runs: tiny Q/A data, run configs, CLI subprocesses, reading logs and weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from lmforge.config import RunConfig, load_config
from lmforge.training.callbacks import read_log
from tests.fixtures.run_configs import write_run_yaml

REPO = Path(__file__).resolve().parents[2]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]

# Short fixed pairs the C5 overfit test must reproduce exactly.
QA_PAIRS = [
    ("What is the capital of France?", "Paris."),
    ("Name a primary color.", "Blue."),
    ("What is 2 plus 2?", "Four."),
    ("Which animal barks?", "A dog."),
    ("What do bees make?", "Honey."),
    ("Opposite of hot?", "Cold."),
    ("How many legs does a spider have?", "Eight."),
    ("What falls from clouds?", "Rain."),
]


def varied_rows(n: int) -> list[tuple[str, str]]:
    """Rows whose trained-token counts differ a lot (1 word up to ~40), so micro-batches hold unequal counts."""
    words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "by", "rivers", "at", "dawn"]
    rows = []
    for i in range(n):
        length = 1 + (i * 7) % 40
        answer = " ".join(words[(i + k) % len(words)] for k in range(length))
        rows.append((f"Question {i}: say {length} words.", answer))
    return rows


def write_alpaca(path: Path, pairs: list[tuple[str, str]]) -> Path:
    path.write_text(json.dumps([{"instruction": q, "input": "", "output": a} for q, a in pairs]), encoding="utf-8")
    return path


def write_config(folder: Path, model_dir: Path, data_file: Path, stage: str = "sft", **sections: dict) -> Path:
    """A run YAML in `folder` (output in folder/out); `sections` update model/data/method/train."""
    dataset = {"path": str(data_file), "format": "text" if stage == "pt" else "alpaca"}
    return write_run_yaml(
        folder, model_dir, stage, dataset, cutoff_len=128, default_method={"name": "lora", "lora_rank": 4}, **sections
    )


def load(path: Path, *overrides: str) -> RunConfig:
    return load_config(path, list(overrides))


def cli(config: Path, *args: str, fault: str | None = None, launcher: list[str] | None = None):
    """Run `lmforge train` in a subprocess (so it can be SIGKILLed) and return the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if k != "LMFORGE_FAULT"}
    env["OMP_NUM_THREADS"] = "1"  # tiny models: extra threads only add contention (20x slower on a busy 2-core box)
    if fault:
        env["LMFORGE_FAULT"] = fault
    command = [*(launcher or [sys.executable]), "-m", "lmforge", "train", str(config), *args]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def step_log(output_dir: Path) -> dict[int, dict[str, Any]]:
    """Training log records by step (the last record wins), training-loss lines only."""
    return {r["step"]: r for r in read_log(output_dir) if "loss" in r}


def final_weights(output_dir: Path) -> dict[str, torch.Tensor]:
    name = "adapter_model.safetensors" if (output_dir / "adapter_model.safetensors").exists() else "model.safetensors"
    return load_file(str(output_dir / name))


def max_weight_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)
