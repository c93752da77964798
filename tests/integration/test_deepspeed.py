"""DeepSpeed ZeRO-2 and ZeRO-3 on CPU (2 processes, gloo) train exactly like plain 2-process DDP with the same
global batch, and their final folders load with plain transformers / peft.

Opt-in: runs only where `deepspeed` is installed (`pip install -e .[deepspeed]`). Tolerance 1e-5 on per-step loss
and final weights: everything is fp32, both sum the same two ranks' gradients, and with clipping off the runs
measured bit-identical (clipping is off for full fine-tuning because DeepSpeed computes the clipping norm its own
way, about 5e-5 relative away from torch's `clip_grad_norm_`; LoRA keeps clipping on and still matches).
Negative control: per-rank token normalisation under ZeRO-3 must miss by more than 1e-3 (measured 6e-3).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from tests.integration.runs import (
    REPO,
    TORCHRUN,
    cli,
    final_weights,
    max_weight_diff,
    step_log,
    varied_rows,
    write_alpaca,
    write_config,
)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("deepspeed") is None,
        reason="deepspeed is not installed (optional extra: pip install -e .[deepspeed])",
    ),
]
STEPS = 6
FULL = {"name": "full"}
LORA = {"name": "lora", "lora_rank": 4}
NO_CLIPPING = {"max_grad_norm": 0.0}


def zero(stage: int) -> dict[str, str]:
    return {"deepspeed": str(REPO / "configs" / "deepspeed" / f"ds_z{stage}.json")}


def train_two_ranks(folder: Path, model_dir: Path, method: dict, **train) -> Path:
    """4 rows per rank, a checkpoint at the last step; returns the output folder."""
    folder.mkdir(parents=True, exist_ok=True)
    data = write_alpaca(folder / "data.json", varied_rows(48))
    train = {"max_steps": STEPS, "learning_rate": 3e-3, "save_strategy": "steps", "save_steps": STEPS, **train}
    config = write_config(folder, model_dir, data, data={"cutoff_len": 256}, method=method, train=train)
    result = cli(config, launcher=TORCHRUN)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder / "out"


def losses(out: Path) -> list[float]:
    return [step_log(out)[step]["loss"] for step in range(1, STEPS + 1)]


def assert_sharded_over_two_ranks(out: Path) -> None:
    """The run really went through the DeepSpeed engine: each rank wrote its own ZeRO shard."""
    shards = out / f"checkpoint-{STEPS}" / f"global_step{STEPS}"
    assert sorted(p.name for p in shards.glob("zero_pp_rank_*_optim_states.pt")) == [
        "zero_pp_rank_0_mp_rank_00_optim_states.pt",
        "zero_pp_rank_1_mp_rank_00_optim_states.pt",
    ]


@pytest.fixture(scope="module")
def ddp_full(tmp_path_factory, tiny_model_dir) -> Path:
    return train_two_ranks(tmp_path_factory.mktemp("ddp_full"), tiny_model_dir, FULL, **NO_CLIPPING)


@pytest.fixture(scope="module")
def ddp_lora(tmp_path_factory, tiny_model_dir) -> Path:
    return train_two_ranks(tmp_path_factory.mktemp("ddp_lora"), tiny_model_dir, LORA)


@pytest.mark.parametrize("stage", [2, 3])
def test_zero_full_fine_tuning_equals_ddp_and_saves_a_plain_model(tmp_path, tiny_model_dir, ddp_full, stage):
    from transformers import AutoModelForCausalLM

    out = train_two_ranks(tmp_path, tiny_model_dir, FULL, **NO_CLIPPING, **zero(stage))
    assert_sharded_over_two_ranks(out)
    assert losses(out) == pytest.approx(losses(ddp_full), abs=1e-5)
    reloaded = AutoModelForCausalLM.from_pretrained(out).state_dict()  # ZeRO-3: gathered to whole tensors on save
    assert max_weight_diff({k: reloaded[k] for k in final_weights(ddp_full)}, final_weights(ddp_full)) <= 1e-5


def test_zero3_lora_equals_ddp_and_saves_a_plain_adapter(tmp_path, tiny_model_dir, ddp_lora):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = train_two_ranks(tmp_path, tiny_model_dir, LORA, **zero(3))
    assert_sharded_over_two_ranks(out)
    assert losses(out) == pytest.approx(losses(ddp_lora), abs=1e-5)
    assert max_weight_diff(final_weights(out), final_weights(ddp_lora)) <= 1e-5
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), out)
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert len(loaded) == len(final_weights(out)) and all(v.abs().sum() > 0 for v in loaded.values())
    assert torch.isfinite(model(input_ids=torch.tensor([[1, 2, 3]])).logits).all()


def test_zero3_per_rank_normalisation_is_caught(tmp_path, tiny_model_dir, ddp_full):
    out = train_two_ranks(
        tmp_path, tiny_model_dir, FULL, **NO_CLIPPING, **zero(3), average_tokens_across_devices=False
    )
    assert max(abs(a - b) for a, b in zip(losses(out), losses(ddp_full), strict=True)) > 1e-3  # 100x the tolerance
