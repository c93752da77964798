"""Crash recovery: a SIGKILLed run resumed from its last complete checkpoint equals the uninterrupted run
(QUALITY B1, B3, B4), and unsafe starts/resumes are refused (B10, output_dir)."""

from __future__ import annotations

import hashlib
import signal
from pathlib import Path

import pytest

from lmforge.train import run_training
from lmforge.utils.errors import CheckpointError
from tests.integration.runs import cli, final_weights, load, max_weight_diff, step_log, varied_rows, write_alpaca
from tests.integration.runs import write_config as _write_config

pytestmark = pytest.mark.slow
# 40 rows / batch 4 = 10 steps per epoch: checkpoint-10 sits on the epoch boundary, checkpoint-15 mid-epoch 2 (B3).
MAX_STEPS = 20


def write_config(folder: Path, model_dir: Path, **train) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = write_alpaca(folder / "data.json", varied_rows(40))
    return _write_config(
        folder,
        model_dir,
        data,
        data={"cutoff_len": 256},
        method={"lora_dropout": 0.1},  # dropout makes the result depend on the restored RNG state
        train={"max_steps": MAX_STEPS, "save_strategy": "steps", "save_steps": 5, "save_total_limit": 3, **train},
    )


@pytest.fixture(scope="module")
def reference(tmp_path_factory, tiny_model_dir) -> Path:
    config = write_config(tmp_path_factory.mktemp("reference"), tiny_model_dir)
    result = cli(config)
    assert result.returncode == 0, result.stderr[-3000:]
    return config.parent / "out"


def tree_hashes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def assert_same_as_reference(out: Path, reference: Path, first_step: int) -> None:
    ref, got = step_log(reference), step_log(out)
    for step in range(first_step, MAX_STEPS + 1):
        assert got[step]["loss"] == pytest.approx(ref[step]["loss"], abs=1e-6), f"step {step}"
        assert got[step]["lr"] == pytest.approx(ref[step]["lr"], abs=1e-12), f"step {step}"
    assert max_weight_diff(final_weights(out), final_weights(reference)) <= 1e-6


def test_resume_after_sigkill_equals_uninterrupted_run(tmp_path, tiny_model_dir, reference):
    config = write_config(tmp_path, tiny_model_dir)
    killed = cli(config, fault="kill_after_step=17")
    assert killed.returncode == -signal.SIGKILL
    assert max(step_log(tmp_path / "out")) == 17

    resumed = cli(config, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-15" in resumed.stderr
    assert_same_as_reference(tmp_path / "out", reference, first_step=16)


def test_kill_inside_accumulation_window_replays_the_whole_window(tmp_path, tiny_model_dir):
    """QUALITY B2: partially accumulated gradients are never saved; resume redoes step 18 from checkpoint-15."""
    accumulate = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 2}
    uninterrupted = write_config(tmp_path / "ref", tiny_model_dir, **accumulate)
    assert cli(uninterrupted).returncode == 0
    config = write_config(tmp_path / "run", tiny_model_dir, **accumulate)
    assert cli(config, fault="kill_at_substep=18:1").returncode == -signal.SIGKILL
    assert max(step_log(tmp_path / "run" / "out")) == 17
    resumed = cli(config, "--resume")
    assert resumed.returncode == 0 and "checkpoint-15" in resumed.stderr
    assert_same_as_reference(tmp_path / "run" / "out", tmp_path / "ref" / "out", first_step=16)


@pytest.mark.parametrize("stage", ["partial_model", "after_optimizer", "before_marker"])
def test_kill_during_save_leaves_incomplete_checkpoint_that_resume_skips(tmp_path, tiny_model_dir, reference, stage):
    config = write_config(tmp_path, tiny_model_dir)
    out = tmp_path / "out"
    killed = cli(config, fault=f"kill_during_save=15:{stage}")
    assert killed.returncode == -signal.SIGKILL
    assert (out / "checkpoint-15.tmp").is_dir() and not (out / "checkpoint-15").exists()
    previous = tree_hashes(out / "checkpoint-10")

    resumed = cli(config, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-15.tmp: incomplete, skipped" in resumed.stderr
    assert "resuming from" in resumed.stderr and "checkpoint-10" in resumed.stderr
    assert tree_hashes(out / "checkpoint-10") == previous  # the complete checkpoint was not touched
    assert_same_as_reference(out, reference, first_step=11)


def test_resume_with_changed_lora_rank_is_refused_with_a_diff(tmp_path, tiny_model_dir, reference):
    cfg = load(reference.parent / "run.yaml", "method.lora_rank=8")
    with pytest.raises(CheckpointError, match=r"method.lora_rank: 4 -> 8"):
        run_training(cfg, resume=True)


def test_non_empty_output_dir_is_refused_without_resume(tiny_model_dir, reference):
    result = cli(reference.parent / "run.yaml")
    assert result.returncode == 2
    assert "is not empty" in result.stderr and "--resume" in result.stderr


def test_same_seed_is_bitwise_reproducible_and_another_seed_is_not(tmp_path, tiny_model_dir, reference):
    """QUALITY C20: same config and seed twice -> identical logs and weights; another seed gives another run."""
    config = write_config(tmp_path / "again", tiny_model_dir)
    assert cli(config).returncode == 0
    ref, again = step_log(reference), step_log(tmp_path / "again" / "out")
    assert [again[s]["loss"] for s in again] == [ref[s]["loss"] for s in ref]
    assert max_weight_diff(final_weights(tmp_path / "again" / "out"), final_weights(reference)) == 0.0

    other = write_config(tmp_path / "other", tiny_model_dir)
    assert cli(other, "train.seed=8").returncode == 0
    assert step_log(tmp_path / "other" / "out")[1]["loss"] != ref[1]["loss"]
