"""Crash recovery of the preference stages: dpo and rm runs SIGKILLed after step 8 and resumed from checkpoint-5
equal the uninterrupted run (losses of every step, reward metrics, final weights), as pt/sft do (test_resume.py)."""

from __future__ import annotations

import signal

import pytest

from tests.integration.runs import cli, final_weights, max_weight_diff, step_log
from tests.unit.alignment.helpers import rule_pairs, write_run

pytestmark = pytest.mark.slow
MAX_STEPS = 12


def config(folder, model_dir, stage):
    return write_run(
        folder, model_dir, stage, "lora", rule_pairs(24, seed=9),
        method={"lora_dropout": 0.1},  # dropout makes the result depend on the restored RNG state
        train={"max_steps": MAX_STEPS, "save_strategy": "steps", "save_steps": 5, "learning_rate": 5e-3},
    )  # fmt: skip


@pytest.mark.parametrize("stage", ["dpo", "rm"])
def test_resume_after_sigkill_equals_the_uninterrupted_run(tmp_path, tiny_model_dir, stage):
    reference = config(tmp_path / "ref", tiny_model_dir, stage)
    assert cli(reference).returncode == 0
    run = config(tmp_path / "run", tiny_model_dir, stage)
    assert cli(run, fault="kill_after_step=8").returncode == -signal.SIGKILL
    assert max(step_log(tmp_path / "run" / "out")) == 8

    resumed = cli(run, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming from" in resumed.stderr and "checkpoint-5" in resumed.stderr
    ref, got = step_log(tmp_path / "ref" / "out"), step_log(tmp_path / "run" / "out")
    for step in range(6, MAX_STEPS + 1):
        for key in ("loss", "rewards/margins", "rewards/accuracies"):
            assert got[step][key] == pytest.approx(ref[step][key], abs=1e-6), (step, key)
    assert max_weight_diff(final_weights(tmp_path / "run" / "out"), final_weights(tmp_path / "ref" / "out")) <= 1e-6
    # negative control: a run with another seed differs, so the tolerance cannot hide a broken resume
    other = config(tmp_path / "other", tiny_model_dir, stage)
    assert cli(other, "train.seed=8", f"train.max_steps={6}").returncode == 0
    assert step_log(tmp_path / "other" / "out")[6]["loss"] != pytest.approx(ref[6]["loss"], abs=1e-6)
