"""TrainingArguments defaults are filled in and the user's train: keys win."""

from __future__ import annotations

import sys
import types

from lmforge.config.schema import DataConfig, RunConfig
from lmforge.training.arguments import (
    build_training_arguments,
    join_deepspeed_to_process_group,
    training_argument_values,
)


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


class FakeDeepSpeed(types.ModuleType):
    """Stands in for `deepspeed`: records init_distributed calls; `comm.is_initialized` is settable."""

    def __init__(self, comm_ready: bool) -> None:
        super().__init__("deepspeed")
        self.calls: list[dict] = []
        self.comm = types.SimpleNamespace(is_initialized=lambda: comm_ready)

    def init_distributed(self, **kwargs) -> None:
        self.calls.append(kwargs)


def fake_process_group(monkeypatch, deepspeed: FakeDeepSpeed | None, initialized: bool = True) -> None:
    monkeypatch.setitem(sys.modules, "deepspeed", deepspeed)  # None: importing deepspeed raises ImportError
    monkeypatch.setattr("torch.distributed.is_initialized", lambda: initialized)
    monkeypatch.setattr("torch.distributed.get_backend", lambda: "gloo")


def test_deepspeed_joins_the_gloo_group_that_cpu_ddp_started(monkeypatch):
    """Else ZeRO-3's zero.Init sees world size 1 while the model loads and rejects the batch sizes."""
    deepspeed = FakeDeepSpeed(comm_ready=False)
    fake_process_group(monkeypatch, deepspeed)
    join_deepspeed_to_process_group()
    assert deepspeed.calls == [{"dist_backend": "gloo", "auto_mpi_discovery": False}]


def test_deepspeed_already_joined_is_left_alone(monkeypatch):
    deepspeed = FakeDeepSpeed(comm_ready=True)  # on GPUs accelerate has initialised deepspeed.comm itself
    fake_process_group(monkeypatch, deepspeed)
    join_deepspeed_to_process_group()
    assert deepspeed.calls == []


def test_no_process_group_needs_no_deepspeed(monkeypatch):
    fake_process_group(monkeypatch, None, initialized=False)
    join_deepspeed_to_process_group()  # would raise ImportError if it imported deepspeed
