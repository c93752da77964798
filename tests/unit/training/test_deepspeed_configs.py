"""The shipped DeepSpeed configs parse and leave batch/precision values to transformers ("auto").

DeepSpeed itself is not installed in the test environment, so this checks the files, not a ZeRO run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "deepspeed"
AUTO_KEYS = ("train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps", "gradient_clipping")


@pytest.mark.parametrize(("name", "stage"), [("ds_z2.json", 2), ("ds_z3.json", 3)])
def test_deepspeed_config_is_valid_and_defers_to_training_arguments(name, stage):
    config = json.loads((CONFIGS / name).read_text())
    assert config["zero_optimization"]["stage"] == stage
    assert all(config[key] == "auto" for key in AUTO_KEYS)
    assert config["bf16"]["enabled"] == "auto" and config["fp16"]["enabled"] == "auto"
    if stage == 3:  # the final folder must hold whole weights, not ZeRO shards
        assert config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] is True


def test_deepspeed_config_is_accepted_by_the_hf_integration():
    """transformers' own config wrapper resolves the file (no deepspeed import needed for that)."""
    from transformers.integrations.deepspeed import HfDeepSpeedConfig

    pytest.importorskip("deepspeed")
    assert HfDeepSpeedConfig(str(CONFIGS / "ds_z3.json")).is_zero3()
