"""SIGTERM / SIGINT (what schedulers and Ctrl-C send) end a run with a sealed checkpoint and a clean exit, and
--resume continues from it to the same result as an uninterrupted run."""

from __future__ import annotations

import signal

import pytest

from lmforge.training.checkpoints import find_resume_checkpoint, list_checkpoints
from tests.integration.runs import cli, final_weights, max_weight_diff, step_log, write_alpaca, write_config

pytestmark = pytest.mark.slow
MAX_STEPS = 8


def _config(folder, model_dir):
    folder.mkdir(parents=True, exist_ok=True)
    data = write_alpaca(folder / "data.json", [(f"question {i}", f"answer {i}") for i in range(16)])
    train = {"max_steps": MAX_STEPS, "save_strategy": "steps", "save_steps": 100}  # no checkpoint of its own
    return write_config(folder, model_dir, data, train=train)


@pytest.mark.parametrize("name", ["TERM", "INT"])
def test_first_signal_saves_a_sealed_checkpoint_and_exits_cleanly_then_resume_matches(tmp_path, tiny_model_dir, name):
    reference = _config(tmp_path / "reference", tiny_model_dir)
    assert cli(reference).returncode == 0
    config = _config(tmp_path / "stopped", tiny_model_dir)
    result = cli(config, fault=f"signal_after_step=3:{name}")
    signum = getattr(signal, f"SIG{name}")
    assert result.returncode == 128 + signum, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert f"lmforge: error: stopped by SIG{name} after step 4; checkpoint-4 is saved" in result.stderr
    out = config.parent / "out"
    assert [p.name for p in list_checkpoints(out)] == ["checkpoint-4"]
    assert find_resume_checkpoint(out) is not None  # sealed and verified
    files = {p.name for p in (out / "checkpoint-4").iterdir()}
    assert {"optimizer.safetensors", "optimizer.json", "scheduler.json", "rng_state.json"} <= files
    assert not [name for name in files if name.endswith((".pt", ".pth", ".bin"))]  # no pickle (QUALITY D1)
    assert not (out / "adapter_model.safetensors").exists()  # no "final" model of a cut-short run

    resumed = cli(config, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    ref_log, log = step_log(reference.parent / "out"), step_log(out)
    assert all(log[s]["loss"] == pytest.approx(ref_log[s]["loss"], abs=1e-6) for s in range(5, MAX_STEPS + 1))
    assert max_weight_diff(final_weights(out), final_weights(reference.parent / "out")) <= 1e-6
