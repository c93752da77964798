"""`lmforge estimate`: trainable counts from the real method code, ZeRO partitioning as in the ZeRO paper, optimizer
states by train.optim, --fit answers at the budget's edge, and the CLI."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from lmforge.cli import main
from lmforge.config import load_config
from lmforge.estimate.estimate_command import build_inputs, components
from lmforge.estimate.memory import optimizer_bytes, peak_bytes
from lmforge.estimate.memory_fit import fit_batch, fit_cutoff, fit_zero
from lmforge.estimate.shape import model_shape
from lmforge.methods import count_parameters, prepare_model
from lmforge.models.model_loading import load_model, load_tokenizer
from lmforge.utils.errors import ConfigError
from tests.fixtures.run_configs import write_run_yaml

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "by", "rivers", "at", "dawn"]


def _config(tmp_path: Path, model_dir: Path, stage: str = "sft", **sections: dict) -> Path:
    """A run YAML over 12 small rows of the stage's format; `sections` update model/method/rl/train (lora default)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    if stage in ("dpo", "orpo", "simpo"):
        rows = [{"conversations": [{"from": "human", "value": f"Say {i}."}],
                 "chosen": {"from": "gpt", "value": " ".join(WORDS[i % 5 :])},
                 "rejected": {"from": "gpt", "value": " ".join(WORDS[: 3 + i % 5])}} for i in range(12)]  # fmt: skip
        dataset = {"path": str(tmp_path / "p.json"), "format": "preference"}
    elif stage in ("ppo", "grpo"):
        rows = [{"prompt": f"Say {i} words."} for i in range(12)]
        dataset = {"path": str(tmp_path / "p.json"), "format": "prompt"}
    else:
        rows = [{"instruction": f"Say {i} words.", "input": "", "output": " ".join(WORDS[: 1 + i])} for i in range(12)]
        dataset = {"path": str(tmp_path / "p.json"), "format": "alpaca"}
    (tmp_path / "p.json").write_text(json.dumps(rows), encoding="utf-8")
    return write_run_yaml(tmp_path, model_dir, stage, dataset, cutoff_len=64, default_method={"name": "lora"},
                          **sections)  # fmt: skip


@pytest.mark.parametrize(
    "method", [{"name": "full"}, {"name": "freeze"}, {"name": "lora"}, {"name": "lora", "lora_use_dora": True},
               {"name": "prompt_tuning"}, {"name": "lora", "modules_to_save": ["embed_tokens", "lm_head"]}],
)  # fmt: skip
def test_trainable_parameters_equal_the_real_prepared_model(method: dict, tiny_model_dir: Path, tmp_path) -> None:
    data = {"padding_free": False} if method["name"] == "prompt_tuning" else {}
    cfg = load_config(_config(tmp_path, tiny_model_dir, method=method, data=data))
    tokenizer = load_tokenizer(cfg.model)
    shape = model_shape(cfg, torch.float32, len(tokenizer))
    real = prepare_model(load_model(cfg.model, tokenizer), cfg.method, cfg.model)
    assert (shape.trainable_params, shape.total_params) == count_parameters(real)


def test_zero_stages_partition_as_the_zero_paper(tiny_model_dir: Path, tmp_path: Path) -> None:
    """16-bit full tuning, N GPUs: stage 1 = 2P + 2P + 12P/N, stage 2 = 2P + (2 + 12)P/N, stage 3 = 16P/N + layers."""
    cfg = load_config(
        _config(tmp_path, tiny_model_dir, method={"name": "full"}, model={"dtype": "bfloat16"}, train={"bf16": True})
    )
    inputs = build_inputs(cfg, gpus=8, gpu="h100")
    p = inputs.shape.total_params
    for stage in (1, 2, 3):
        parts = {c.name: c.bytes for c in components(inputs, dataclasses.replace(inputs.plan, zero_stage=stage))}
        state = parts["optimizer states"] + parts["gradients"] + parts["weights"]
        expected = {
            1: 4 * p + 12 * p / 8,
            2: 2 * p + 14 * p / 8,
            3: 16 * p / 8 + 2 * 2 * inputs.shape.largest_layer_params,
        }
        assert state == pytest.approx(expected[stage])
    offload = dataclasses.replace(inputs.plan, zero_stage=3, offload_optimizer=True)
    names = {c.name: c.phase for c in components(inputs, offload)}
    assert names["optimizer states (CPU)"] == "cpu" and "optimizer states" not in names


def test_optimizer_states_follow_train_optim(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(_config(tmp_path, tiny_model_dir, method={"name": "full"}))
    shape = build_inputs(cfg, 1, None).shape
    assert optimizer_bytes("adamw_torch", shape)[0] == 2 * 4 * shape.trainable_params
    assert optimizer_bytes("adamw_bnb_8bit", shape)[0] == 2 * shape.trainable_params
    assert optimizer_bytes("sgd", shape)[0] == 0
    with pytest.raises(ConfigError, match="not modelled"):
        optimizer_bytes("mystery", shape)


def test_fit_batch_answers_the_largest_batch_under_the_budget(tiny_model_dir: Path, tmp_path: Path) -> None:
    inputs = build_inputs(load_config(_config(tmp_path, tiny_model_dir)), 1, None)
    at = {b: peak_bytes(components(inputs, dataclasses.replace(inputs.plan, batch=b))) for b in (3, 4)}
    assert at[3] < at[4]
    assert fit_batch(inputs, (at[3] + at[4]) / 2)[0] == 3
    assert fit_batch(inputs, 1.0)[0] == 0


def test_fit_cutoff_len_is_the_longest_cut_that_fits(tiny_model_dir: Path, tmp_path: Path) -> None:
    inputs = build_inputs(load_config(_config(tmp_path, tiny_model_dir)), 1, None)
    inputs = dataclasses.replace(inputs, tokens=dataclasses.replace(inputs.tokens, lengths=(300,) * 12))
    at = {c: peak_bytes(components(inputs, tokens=dataclasses.replace(inputs.tokens, lengths=(c,) * 12)))
          for c in (128, 192)}  # fmt: skip
    assert fit_cutoff(inputs, (at[128] + at[192]) / 2)[0] == 128
    assert fit_cutoff(inputs, 1.0)[0] == 0
    assert fit_cutoff(inputs, 1e12)[0] >= 300  # everything fits uncut


def test_fit_zero_picks_the_first_stage_that_fits(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(
        _config(tmp_path, tiny_model_dir, method={"name": "full"}, model={"dtype": "bfloat16"}, train={"bf16": True})
    )
    inputs = build_inputs(cfg, gpus=4, gpu="h100")
    peaks = [peak_bytes(components(inputs, dataclasses.replace(inputs.plan, zero_stage=s))) for s in (0, 1, 3)]
    assert peaks[0] > peaks[1] > peaks[2]  # the optimizer states are partitioned from stage 1 on
    answer, line = fit_zero(inputs, (peaks[0] + peaks[1]) / 2)
    assert answer == {"stage": 1, "offload_optimizer": False, "offload_params": False} and "ZeRO-1" in line
    assert fit_zero(inputs, peaks[0])[0]["stage"] == 0
    assert fit_zero(inputs, 1.0)[0] is None


def test_dpo_full_holds_a_reference_copy_and_prices_only_trained_logits(tiny_model_dir: Path, tmp_path) -> None:
    dpo = build_inputs(load_config(_config(tmp_path, tiny_model_dir, "dpo", method={"name": "full"})), 1, None)
    parts = {c.name: c for c in components(dpo)}
    assert parts["reference model"].bytes == pytest.approx(parts["weights"].bytes)
    assert "trained positions" in parts["logits / loss"].formula
    assert dpo.tokens.peak_logit_tokens(4) < dpo.tokens.peak_tokens(4)  # prompts never reach the head
    lora = build_inputs(load_config(_config(tmp_path / "l", tiny_model_dir, "dpo")), 1, None)
    assert "reference model" not in {c.name for c in components(lora)}  # the adapter-disabled model is the reference


def test_grpo_prices_the_rollout_kv_cache(tiny_model_dir: Path, tmp_path: Path) -> None:
    cfg = load_config(
        _config(
            tmp_path,
            tiny_model_dir,
            "grpo",
            rl={"num_generations": 4, "max_new_tokens": 16, "reward_funcs": ["lmforge.rl.builtin:length"]},
        )
    )
    inputs = build_inputs(cfg, 1, None)
    (cache,) = [c for c in components(inputs) if c.name == "rollout KV cache"]
    s = inputs.shape
    rows = inputs.plan.batch * 4
    assert cache.bytes == 2 * s.layers * s.kv_heads * s.head_dim * rows * inputs.tokens.rollout_lengths[0] * 4


def test_cli_prints_components_time_and_fit(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    config = _config(tmp_path, tiny_model_dir)
    assert (
        main(["estimate", str(config), "train.per_device_train_batch_size=2", "--gpu", "h100", "--fit", "batch"]) == 0
    )
    out = capsys.readouterr().out
    for text in ("weights", "optimizer states", "activations", "logits / loss", "peak =", "s/step", "fit (batch"):
        assert text in out
    assert main(["estimate", str(config), "--gpu", "tpu9"]) == 2
    assert "unknown device" in capsys.readouterr().err
