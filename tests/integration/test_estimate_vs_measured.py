"""`lmforge estimate` against real `lmforge train` runs on CPU: the estimated peak within ±20% of the peak the
profiler measures (every CPU tensor allocation of the run, summed in order) for full, LoRA, QLoRA and DPO, with and
without gradient checkpointing. docs/estimate.md has the table these runs produce."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.estimate.estimate_command import build_inputs, components
from lmforge.estimate.measure import measure_run
from lmforge.estimate.memory import peak_bytes
from tests.fixtures.run_configs import write_run_yaml

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "by", "rivers", "at", "dawn"]
CASES = [
    ("sft", {"name": "full"}),
    ("sft", {"name": "lora", "lora_rank": 8}),
    ("sft", {"name": "qlora", "lora_rank": 8}),
    ("dpo", {"name": "lora", "lora_rank": 8}),
    ("dpo", {"name": "full"}),
]
TOLERANCE = 0.20


@pytest.fixture(scope="module")
def init_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`lmforge init-model` tiny qwen2: 7.4M parameters and an 8192-token vocabulary (logits matter, as in real
    models)."""
    from lmforge.models.init import init_model

    folder = tmp_path_factory.mktemp("estimate") / "model"
    init_model(output=str(folder), arch="qwen2", size="tiny", corpus=[], template="chatml", seed=0)
    return folder


def _config(folder: Path, model_dir: Path, stage: str, method: dict, checkpointing: bool) -> Path:
    return write_run_yaml(
        folder, model_dir, stage, _dataset(folder, stage), cutoff_len=128, default_method=method,
        model={"gradient_checkpointing": checkpointing},
    )  # fmt: skip


def _dataset(folder: Path, stage: str) -> dict:
    """Rows of nearly equal length, so the 3 measured steps see the micro-batch the estimate prices (the longest)."""
    if stage == "sft":
        rows = [{"instruction": f"Say the {i % 10} words.", "input": "",
                 "output": " ".join(WORDS[(i + k) % 13] for k in range(24))} for i in range(32)]  # fmt: skip
        (folder / "sft.json").write_text(json.dumps(rows), encoding="utf-8")
        return {"path": str(folder / "sft.json"), "format": "alpaca"}
    rows = [{"conversations": [{"from": "human", "value": f"Say the {i % 10} words."}],
             "chosen": {"from": "gpt", "value": " ".join(WORDS[(i + k) % 13] for k in range(20))},
             "rejected": {"from": "gpt", "value": " ".join(WORDS[(i + k + 3) % 13] for k in range(20))}}
            for i in range(32)]  # fmt: skip
    (folder / "dpo.json").write_text(json.dumps(rows), encoding="utf-8")
    return {"path": str(folder / "dpo.json"), "format": "preference"}


@pytest.mark.slow
@pytest.mark.parametrize("checkpointing", [False, True], ids=["no-gc", "gc"])
@pytest.mark.parametrize(("stage", "method"), CASES, ids=[f"{s}-{m['name']}" for s, m in CASES])
def test_estimated_peak_is_within_20_percent_of_the_measured_run(
    stage: str, method: dict, checkpointing: bool, init_model_dir: Path, tmp_path: Path
) -> None:
    cfg = load_config(_config(tmp_path, init_model_dir, stage, method, checkpointing))
    estimated = peak_bytes(components(build_inputs(cfg, gpus=1, gpu=None)))
    measured = measure_run(cfg, steps=3).peak_bytes
    error = (estimated - measured) / measured
    assert abs(error) <= TOLERANCE, (
        f"estimate {estimated / 1e6:.1f} MB vs measured {measured / 1e6:.1f} MB ({error:+.1%})"
    )


@pytest.mark.slow
def test_an_estimate_without_the_loss_buffers_misses_the_measured_peak(init_model_dir: Path, tmp_path: Path) -> None:
    """Negative control: the comparison is sharp enough to catch a missing component (the logits / loss buffers)."""
    cfg = load_config(_config(tmp_path, init_model_dir, "sft", {"name": "lora", "lora_rank": 8}, False))
    parts = [c for c in components(build_inputs(cfg, gpus=1, gpu=None)) if c.name != "logits / loss"]
    measured = measure_run(cfg, steps=3).peak_bytes
    assert abs(peak_bytes(parts) - measured) / measured > TOLERANCE
