"""2-process DDP on CPU (gloo) equals one process with the same global batch (QUALITY C13): per-step loss and
final weights within 1e-5. Negative control: per-rank token normalisation (average_tokens_across_devices=false)
must differ, so the tolerance cannot hide a wrong loss scale."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.training.checkpoints import find_resume_checkpoint
from tests.integration.runs import TORCHRUN, cli, final_weights, max_weight_diff, step_log, varied_rows, write_alpaca
from tests.integration.runs import write_config as _write_config

pytestmark = pytest.mark.slow
STEPS = 10
CHECKPOINTS = {"save_strategy": "steps", "save_steps": 5}


def write_config(folder: Path, model_dir: Path, batch: int, **train) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = write_alpaca(folder / "data.json", varied_rows(48))
    train = {"max_steps": STEPS, "per_device_train_batch_size": batch, "learning_rate": 3e-3, **train}
    return _write_config(folder, model_dir, data, data={"cutoff_len": 256}, method={"name": "full"}, train=train)


def losses(out: Path) -> list[float]:
    return [step_log(out)[step]["loss"] for step in range(1, STEPS + 1)]


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_model_dir) -> Path:
    config = write_config(tmp_path_factory.mktemp("single"), tiny_model_dir, batch=8)
    result = cli(config)
    assert result.returncode == 0, result.stderr[-3000:]
    return config.parent / "out"


@pytest.fixture(scope="module")
def ddp(tmp_path_factory, tiny_model_dir) -> Path:
    config = write_config(tmp_path_factory.mktemp("ddp"), tiny_model_dir, batch=4, **CHECKPOINTS)
    result = cli(config, launcher=TORCHRUN)
    assert result.returncode == 0, result.stderr[-3000:]
    return config.parent / "out"


def test_two_process_ddp_equals_single_process(ddp, single):
    assert losses(ddp) == pytest.approx(losses(single), abs=1e-5)
    assert max_weight_diff(final_weights(ddp), final_weights(single)) <= 1e-5
    assert Path(find_resume_checkpoint(ddp)).name == f"checkpoint-{STEPS}"  # sealed once, by rank 0


def test_ddp_resume_after_killing_both_ranks_equals_uninterrupted_ddp(tmp_path, tiny_model_dir, ddp):
    config = write_config(tmp_path, tiny_model_dir, batch=4, **CHECKPOINTS)
    killed = cli(config, fault="kill_after_step=7", launcher=TORCHRUN)  # every rank SIGKILLs itself
    assert killed.returncode != 0 and max(step_log(tmp_path / "out")) == 7
    resumed = cli(config, "--resume", launcher=TORCHRUN)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "checkpoint-5" in resumed.stderr
    assert losses(tmp_path / "out")[5:] == pytest.approx(losses(ddp)[5:], abs=1e-6)
    assert max_weight_diff(final_weights(tmp_path / "out"), final_weights(ddp)) <= 1e-6


def test_per_rank_normalisation_is_caught(tmp_path, tiny_model_dir, single):
    config = write_config(tmp_path, tiny_model_dir, batch=4, average_tokens_across_devices=False)
    result = cli(config, launcher=TORCHRUN)
    assert result.returncode == 0, result.stderr[-3000:]
    assert max(abs(a - b) for a, b in zip(losses(tmp_path / "out"), losses(single), strict=True)) > 1e-2
