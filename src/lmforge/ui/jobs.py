"""Jobs of `lmforge ui`: `lmforge train|eval|export` processes that outlive the page and the UI itself.

Each job is a folder under the jobs directory, named after the job's kind and output folder, so the command a
form stands for is known before it starts (`lmforge train JOBS/train-out-1a2b3c4d/config.yaml`):

    job.json      kind, the lmforge arguments, output folder, and one entry per attempt (start, pid, abort)
    config.yaml   the run config the arguments name (train, eval)
    process.log   stdout + stderr of every attempt, appended
    exit-N.json   written by the supervisor when attempt N's process ended: its exit status, killed or not

A job runs as `python -m lmforge.ui.supervise JOB N` in a new session (no terminal), with an argument list, never
a shell. The supervisor starts the lmforge command in a process group of its own and records its exit status;
closing the browser or stopping the UI touches neither. A restarted UI lists the folders again and re-attaches: a
job is running while its supervisor is alive, otherwise its exit file says how it ended. Abort signals the
supervisor, which sends SIGTERM to the run's whole process group (lmforge train then saves a sealed checkpoint at
the end of the step and exits; `--resume` continues from it) and SIGKILL after the grace period if anything in
the group is still alive.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.utils.errors import ConfigError

JOB_FILE, CONFIG_FILE, PROCESS_LOG = "job.json", "config.yaml", "process.log"
KINDS = ("train", "eval", "export")
#: seconds between SIGTERM and SIGKILL on abort: enough for a checkpoint of a mid-sized model to be written
DEFAULT_GRACE_S = 60.0


def job_id(kind: str, output_dir: str) -> str:
    """A stable name for the job writing `output_dir`: readable folder name plus a hash of the absolute path."""
    absolute = str(Path(output_dir).expanduser().resolve())
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(absolute).name).strip("-")[:40] or "run"
    return f"{kind}-{slug}-{hashlib.sha256(absolute.encode()).hexdigest()[:8]}"


def display_command(args: list[str]) -> str:
    """The command as a user would type it."""
    return shlex.join(["lmforge", *args])


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically (readers never see half a file)."""
    staging = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    staging.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.replace(staging, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else (a reused id): not ours, so not running
        return False
    return True


@dataclass
class JobStatus:
    """What the page shows about a job: state is running | finished | stopped | aborted | killed | failed | lost;
    message is the detail shown after the state badge, so it never repeats the state (empty when there is none)."""

    state: str
    message: str
    returncode: int | None = None

    @property
    def running(self) -> bool:
        return self.state == "running"


class Job:
    """One job folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.id = folder.name

    @property
    def info(self) -> dict[str, Any]:
        return json.loads((self.folder / JOB_FILE).read_text(encoding="utf-8"))

    def save_info(self, info: dict[str, Any]) -> None:
        _write_json(self.folder / JOB_FILE, info)

    @property
    def output_dir(self) -> Path:
        return Path(self.info["output_dir"])

    @property
    def log_path(self) -> Path:
        return self.folder / PROCESS_LOG

    @property
    def trainer_log(self) -> Path:
        from lmforge.training.callbacks import LOG_FILE  # transformers: not at import (the supervisor starts fast)

        return self.output_dir / LOG_FILE

    def exit_record(self, attempt: int) -> dict[str, Any] | None:
        path = self.folder / f"exit-{attempt}.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    def status(self) -> JobStatus:
        info = self.info
        attempts = info.get("attempts", [])
        if not attempts:
            return JobStatus("lost", "never started")
        last = attempts[-1]
        ended = self.exit_record(len(attempts))
        if ended is None:
            if _alive(last["pid"]):
                return JobStatus("running", "stopping: saving a checkpoint" if last.get("abort") else "")
            return JobStatus("lost", "the process ended without recording an exit status (machine restart?)")
        code = ended["returncode"]
        if ended.get("killed"):
            return JobStatus("killed", "SIGKILL after the abort grace period (no checkpoint of it)", code)
        if code == 0:
            return JobStatus("finished", "", code)
        if code == 128 + signal.SIGTERM and info["kind"] == "train":
            state = "aborted" if last.get("abort") else "stopped"
            return JobStatus(state, "stopped with a sealed checkpoint: Resume continues from it", code)
        if last.get("abort"):
            return JobStatus("aborted", f"exit status {code}", code)
        return JobStatus("failed", f"exit status {code}; see the log", code)

    def summary(self) -> dict[str, Any]:
        info = self.info
        status = self.status()
        attempts = info.get("attempts", [])
        return {
            "id": self.id,
            "kind": info["kind"],
            "output_dir": info["output_dir"],
            "command": display_command(info["args"]),
            "attempt": len(attempts),
            "started": attempts[-1]["started"] if attempts else None,
            "ended": (self.exit_record(len(attempts)) or {}).get("ended") if attempts else None,
            "state": status.state,
            "message": status.message,
            "resumable": info["kind"] == "train" and not status.running and status.state != "finished",
        }


class JobRunner:
    """Starts, lists, aborts and resumes jobs kept in `jobs_dir`."""

    def __init__(self, jobs_dir: str | Path, grace_s: float = DEFAULT_GRACE_S) -> None:
        self.jobs_dir = Path(jobs_dir).expanduser().resolve()
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.grace_s = grace_s
        self._children: dict[str, subprocess.Popen] = {}  # supervisors this UI started: reaped when they end
        self._lock = threading.Lock()

    def folder_for(self, kind: str, output_dir: str) -> Path:
        return self.jobs_dir / job_id(kind, output_dir)

    def get(self, identifier: str) -> Job:
        folder = self.jobs_dir / identifier
        if "/" in identifier or identifier.startswith(".") or not (folder / JOB_FILE).is_file():
            raise ConfigError(f"no job {identifier!r} in {self.jobs_dir}")
        self._reap()
        return Job(folder)

    def jobs(self) -> list[Job]:
        """Every job in the folder, newest start first (running or not, started by this UI or an earlier one)."""
        self._reap()
        found = [Job(p.parent) for p in self.jobs_dir.glob(f"*/{JOB_FILE}")]
        return sorted(found, key=lambda job: job.info.get("attempts", [{}])[-1].get("started", 0), reverse=True)

    def start(self, kind: str, args: list[str], output_dir: str, config_yaml: str | None = None) -> Job:
        """Start `lmforge ARGS` as a new job (or a new attempt of the job for the same output folder)."""
        if kind not in KINDS:
            raise ConfigError(f"unknown job kind {kind!r}; expected one of {', '.join(KINDS)}")
        folder = self.folder_for(kind, output_dir)
        with self._lock:
            if (folder / JOB_FILE).is_file() and Job(folder).status().running:
                raise ConfigError(f"a {kind} job for {output_dir} is already running ({folder.name})")
            folder.mkdir(parents=True, exist_ok=True)
            if config_yaml is not None:
                (folder / CONFIG_FILE).write_text(config_yaml, encoding="utf-8")
            info = {"kind": kind, "args": args, "output_dir": str(Path(output_dir).expanduser().resolve())}
            old = Job(folder).info if (folder / JOB_FILE).is_file() else {}
            info["attempts"] = old.get("attempts", [])
            return self._launch(Job(folder), info)

    def resume(self, identifier: str) -> Job:
        """Start the train job again with --resume (continues from its newest sealed checkpoint)."""
        job = self.get(identifier)
        with self._lock:
            status = job.status()
            info = job.info
            if info["kind"] != "train":
                raise ConfigError(f"job {identifier} is a {info['kind']} job; only train jobs resume")
            if status.running:
                raise ConfigError(f"job {identifier} is still running")
            args = [a for a in info["args"] if a != "--resume"] + ["--resume"]
            return self._launch(job, {**info, "args": args})

    def _launch(self, job: Job, info: dict[str, Any]) -> Job:
        attempt = len(info["attempts"]) + 1
        (job.folder / f"exit-{attempt}.json").unlink(missing_ok=True)
        info["grace_s"] = self.grace_s
        job.save_info(info)  # the supervisor reads the arguments and the abort grace period from here
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "lmforge.ui.supervise", str(job.folder), str(attempt)]
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # own session: no terminal, no signal from the UI's process group reaches it
            cwd=Path.cwd(),
            env=env,
        )
        self._children[job.id] = process
        info["attempts"].append({"started": time.time(), "pid": process.pid})
        job.save_info(info)
        return job

    def abort(self, identifier: str) -> Job:
        """Ask the job's supervisor to stop it: SIGTERM to the run's process group now, SIGKILL after the grace
        period if any of it is still alive (the supervisor does both, so a UI restart does not interrupt it)."""
        job = self.get(identifier)
        info = job.info
        if not job.status().running:
            raise ConfigError(f"job {identifier} is not running")
        info["attempts"][-1]["abort"] = time.time()
        job.save_info(info)
        with contextlib.suppress(ProcessLookupError):
            os.kill(info["attempts"][-1]["pid"], signal.SIGTERM)
        return job

    def _reap(self) -> None:
        """Collect supervisors this UI started that have ended (no zombies keep their group 'alive')."""
        for key, process in list(self._children.items()):
            if process.poll() is not None:
                del self._children[key]
