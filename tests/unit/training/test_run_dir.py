"""Output-dir refusal, config snapshot, and refusing resumes that change what a step means (QUALITY B10)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from lmforge.config.schema import DataConfig, MethodConfig, ModelConfig, RunConfig
from lmforge.training.checkpoints import seal_checkpoint
from lmforge.training.run_dir import SNAPSHOT, check_output_dir, prepare_output_dir
from lmforge.utils.errors import CheckpointError


def make_cfg(output_dir, **train) -> RunConfig:
    return RunConfig(
        stage="sft",
        model=ModelConfig(name_or_path="base"),
        data=DataConfig(datasets=["demo"]),
        method=MethodConfig(name="lora", lora_rank=8),
        train={"output_dir": str(output_dir), "per_device_train_batch_size": 4, **train},
    )


def start_run(cfg: RunConfig) -> None:
    check_output_dir(cfg, resume=False, world_size=1)
    prepare_output_dir(cfg, resume=False, world_size=1)
    staging = Path(cfg.output_dir) / "checkpoint-5.tmp"
    staging.mkdir()
    (staging / "adapter_model.safetensors").write_bytes(b"weights")
    seal_checkpoint(staging, Path(cfg.output_dir) / "checkpoint-5", 5)


def test_fresh_run_writes_loadable_snapshot(tmp_path):
    cfg = make_cfg(tmp_path / "run")
    check_output_dir(cfg, resume=False, world_size=1)
    prepare_output_dir(cfg, resume=False, world_size=1)
    snapshot = yaml.safe_load((tmp_path / "run" / SNAPSHOT).read_text())
    assert snapshot["method"]["lora_rank"] == 8 and snapshot["train"]["output_dir"] == str(tmp_path / "run")


def test_non_empty_output_dir_is_refused_with_the_fixes(tmp_path):
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(CheckpointError, match=r"not empty \(old.txt\).*--resume.*overwrite_output_dir"):
        check_output_dir(make_cfg(tmp_path), resume=False, world_size=1)


def test_overwrite_output_dir_deletes_the_previous_run(tmp_path):
    start_run(make_cfg(tmp_path))
    (tmp_path / "adapter_config.json").write_text("{}")  # a stale adapter would shadow a new full model
    cfg = make_cfg(tmp_path, overwrite_output_dir=True)
    check_output_dir(cfg, resume=False, world_size=1)
    prepare_output_dir(cfg, resume=False, world_size=1)
    assert not (tmp_path / "checkpoint-5").exists()
    assert not (tmp_path / "adapter_config.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmforge_config.yaml", "lmforge_run.json"]


def test_overwrite_refuses_a_folder_that_is_not_an_lmforge_run(tmp_path):
    (tmp_path / "thesis.tex").write_text("x")
    with pytest.raises(CheckpointError, match="holds no previous lmforge run"):
        check_output_dir(make_cfg(tmp_path, overwrite_output_dir=True), resume=False, world_size=1)
    assert (tmp_path / "thesis.tex").exists()


def test_resume_without_checkpoint_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        check_output_dir(make_cfg(tmp_path), resume=True, world_size=1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"train": {"per_device_train_batch_size": 8}}, "train.per_device_train_batch_size: 4 -> 8"),
        ({"data": DataConfig(datasets=["other"])}, "data.datasets: ['demo'] -> ['other']"),
        ({"model": ModelConfig(name_or_path="other")}, "model.name_or_path: 'base' -> 'other'"),
        ({"method": MethodConfig(name="lora", lora_rank=16)}, "method.lora_rank: 8 -> 16"),
    ],
)
def test_resume_with_changed_fields_is_refused_with_a_diff(tmp_path, change, field):
    cfg = make_cfg(tmp_path)
    start_run(cfg)
    if "train" in change:
        change = {"train": {**cfg.train, **change["train"]}}
    changed = dataclasses.replace(cfg, **change)
    with pytest.raises(CheckpointError, match="differs from the run being resumed") as err:
        check_output_dir(changed, resume=True, world_size=1)
    assert field in str(err.value)
    check_output_dir(changed, resume=True, world_size=1, force_resume=True)  # forced: a warning only


def test_resume_with_changed_world_size_is_refused(tmp_path):
    cfg = make_cfg(tmp_path)
    start_run(cfg)
    with pytest.raises(CheckpointError, match="world_size: 1 -> 2"):
        check_output_dir(cfg, resume=True, world_size=2)


def test_resume_with_only_logging_changes_is_allowed(tmp_path):
    cfg = make_cfg(tmp_path)
    start_run(cfg)
    check_output_dir(make_cfg(tmp_path, logging_steps=3, save_steps=7, max_steps=100), resume=True, world_size=1)


@pytest.mark.parametrize("key", ["name_or_path", "adapter_name_or_path", "tokenizer_name_or_path"])
def test_overwrite_refuses_to_delete_the_model_it_loads_and_leaves_it_untouched(tmp_path, key):
    start_run(make_cfg(tmp_path / "x"))
    (tmp_path / "x" / "model.safetensors").write_bytes(b"the weights")
    before = {p.name: p.read_bytes() for p in (tmp_path / "x").rglob("*") if p.is_file()}
    cfg = dataclasses.replace(
        make_cfg(tmp_path / "x", overwrite_output_dir=True),
        model=dataclasses.replace(ModelConfig(name_or_path="base"), **{key: str(tmp_path / "x")}),
    )
    with pytest.raises(CheckpointError, match=rf"would delete .*model.{key}=.*nothing was deleted"):
        check_output_dir(cfg, resume=False, world_size=1)
    assert {p.name: p.read_bytes() for p in (tmp_path / "x").rglob("*") if p.is_file()} == before


def test_overwrite_refuses_an_output_dir_that_contains_an_input_dataset(tmp_path):
    start_run(make_cfg(tmp_path))
    (tmp_path / "data.jsonl").write_text("{}\n")
    cfg = dataclasses.replace(
        make_cfg(tmp_path, overwrite_output_dir=True),
        data=DataConfig(datasets=[{"path": str(tmp_path / "data.jsonl")}]),
    )
    with pytest.raises(CheckpointError, match=r"data.datasets\[0\].path"):
        check_output_dir(cfg, resume=False, world_size=1)
    assert (tmp_path / "data.jsonl").read_text() == "{}\n"


def test_leftovers_of_a_run_that_failed_at_startup_do_not_block_the_rerun(tmp_path):
    cfg = make_cfg(tmp_path)
    check_output_dir(cfg, resume=False, world_size=1)
    prepare_output_dir(cfg, resume=False, world_size=1)  # ... then the run died loading data or the model
    (tmp_path / "bad_rows.jsonl").write_text('{"line": 3}\n')
    check_output_dir(cfg, resume=False, world_size=1)
    prepare_output_dir(cfg, resume=False, world_size=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lmforge_config.yaml", "lmforge_run.json"]


def test_a_run_that_trained_still_blocks_a_fresh_start(tmp_path):
    start_run(make_cfg(tmp_path))
    with pytest.raises(CheckpointError, match="not empty"):
        check_output_dir(make_cfg(tmp_path), resume=False, world_size=1)
