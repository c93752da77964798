"""TrainingArguments defaults are filled in and the user's train: keys win."""

from __future__ import annotations

from lmforge.config.schema import DataConfig, RunConfig
from lmforge.training.arguments import build_training_arguments, training_argument_values


def cfg_with(tmp_path, data=None, **train) -> RunConfig:
    return RunConfig(data=data or DataConfig(), train={"output_dir": str(tmp_path), **train})


def test_defaults_for_padding_free_runs(tmp_path):
    values = training_argument_values(cfg_with(tmp_path, max_steps=20))
    assert values["remove_unused_columns"] is False
    assert values["include_num_input_tokens_seen"] == "all"  # no padding in a padding-free batch
    assert values["logging_steps"] == 1
    assert "overwrite_output_dir" not in training_argument_values(cfg_with(tmp_path, overwrite_output_dir=True))


def test_padded_runs_count_non_padding_tokens(tmp_path):
    values = training_argument_values(cfg_with(tmp_path, data=DataConfig(padding_free=False)))
    assert values["include_num_input_tokens_seen"] == "non_padding"
    assert values["logging_steps"] == 10


def test_user_values_win(tmp_path):
    args = build_training_arguments(cfg_with(tmp_path, logging_steps=7, report_to="none", seed=3))
    assert (args.logging_steps, args.report_to, args.seed) == (7, [], 3)


def test_cpu_ddp_uses_gloo_and_cpu_mode(tmp_path, monkeypatch):
    """Without use_cpu, accelerate sets up gloo but reports no distribution and DDP never wraps the model."""
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    values = training_argument_values(cfg_with(tmp_path))
    assert (values["ddp_backend"], values["use_cpu"]) == ("gloo", True)
