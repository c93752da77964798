"""The UI's job runner on real `lmforge train` processes of a tiny model: start, stream the log incrementally,
abort the process group with a sealed checkpoint, re-attach from a new runner (a restarted UI), resume."""

from __future__ import annotations

import time

import pytest
import yaml

from lmforge.training.callbacks import read_log
from lmforge.training.checkpoints import find_resume_checkpoint
from lmforge.ui.jobs import CONFIG_FILE, JobRunner, job_id
from lmforge.ui.tail import read_new_records
from tests.integration.runs import write_alpaca, write_config

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _one_thread_children(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # job processes inherit the UI's environment


def _train_job(runner: JobRunner, folder, model_dir, **train):
    folder.mkdir(parents=True)
    data = write_alpaca(folder / "data.json", [(f"question {i}", f"answer {i}") for i in range(16)])
    config = write_config(folder, model_dir, data, train={"save_strategy": "steps", "save_steps": 10_000, **train})
    raw = yaml.safe_load(config.read_text())
    out = raw["train"]["output_dir"]
    yaml_path = runner.folder_for("train", out) / CONFIG_FILE
    return runner.start("train", ["train", str(yaml_path)], out, config.read_text()), out


def _wait(predicate, timeout=240.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_started_job_streams_its_log_incrementally_and_finishes(tmp_path, tiny_model_dir):
    runner = JobRunner(tmp_path / "jobs")
    job, out = _train_job(runner, tmp_path / "run", tiny_model_dir, max_steps=5)
    assert job.id == job_id("train", out)
    seen, offset, reads = [], 0, 0
    while runner.get(job.id).status().running or not seen:
        records, chunk = read_new_records(job.trainer_log, offset)
        seen += records
        offset = chunk.offset
        reads += 1
        time.sleep(0.05)
    records, chunk = read_new_records(job.trainer_log, offset)
    seen += records
    assert runner.get(job.id).status().state == "finished", job.log_path.read_text()[-3000:]
    assert seen == read_log(out)  # the pieces add up to the file, nothing read twice
    assert [r["step"] for r in seen if "loss" in r] == [1, 2, 3, 4, 5]
    assert {r["max_steps"] for r in seen} == {5}
    assert "=== attempt 1: lmforge train" in job.log_path.read_text()


def test_abort_stops_the_group_with_a_sealed_checkpoint_a_new_runner_reattaches_and_resume_finishes(
    tmp_path, tiny_model_dir
):
    runner = JobRunner(tmp_path / "jobs", grace_s=120)
    job, out = _train_job(runner, tmp_path / "run", tiny_model_dir, max_steps=200)
    _wait(lambda: any(r.get("step", 0) >= 2 for r in read_log(out)))

    restarted = JobRunner(tmp_path / "jobs", grace_s=120)  # a UI started later knows the job from its folder
    listed = restarted.jobs()
    assert [j.id for j in listed] == [job.id] and listed[0].status().running
    restarted.abort(job.id)
    status = _wait(lambda: (s := restarted.get(job.id).status()).state != "running" and s)
    assert status.state == "aborted", job.log_path.read_text()[-3000:]
    checkpoint = find_resume_checkpoint(tmp_path / "run" / "out")
    assert checkpoint is not None
    stopped_at = int(checkpoint.rsplit("-", 1)[1])
    assert stopped_at < 200

    restarted.resume(job.id)
    _wait(lambda: not restarted.get(job.id).status().running)
    assert restarted.get(job.id).status().state == "finished", job.log_path.read_text()[-3000:]
    steps = [r["step"] for r in read_log(out) if "loss" in r]
    assert steps == list(range(1, 201))  # the resumed log continues the stopped one, each step once
    assert restarted.get(job.id).summary()["attempt"] == 2


def test_abort_escalates_to_sigkill_after_the_grace_period(tmp_path, tiny_model_dir):
    runner = JobRunner(tmp_path / "jobs", grace_s=0)  # no time for the checkpoint: SIGKILL right after SIGTERM
    job, out = _train_job(runner, tmp_path / "run", tiny_model_dir, max_steps=400)
    _wait(lambda: any(r.get("step", 0) >= 2 for r in read_log(out)))
    runner.abort(job.id)
    status = _wait(lambda: (s := runner.get(job.id).status()).state != "running" and s)
    assert status.state == "killed" and status.returncode == -9, job.log_path.read_text()[-3000:]
    assert find_resume_checkpoint(tmp_path / "run" / "out") is None
    assert runner.get(job.id).summary()["resumable"]  # Resume then says there is no checkpoint to resume from
