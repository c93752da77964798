"""`python -m lmforge.ui.supervise JOB_FOLDER ATTEMPT`: run one attempt of a UI job and record how it ended.

Started by the UI in a new session. It runs `python -m lmforge ARGS` (the arguments from job.json, a list, no
shell) as the leader of a new process group, with output appended to process.log, and writes exit-ATTEMPT.json
with the exit status, which is how a UI started later knows whether the run finished, stopped or failed.
SIGTERM (the UI's Abort) is passed to the run's whole group (DDP ranks, data workers included); whatever is still
alive in it after the job's grace period gets SIGKILL. The supervisor is outside that group, so it lives to record
the outcome, and the escalation happens even when the UI is gone.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from lmforge.ui.jobs import JOB_FILE, PROCESS_LOG, display_command


class Stopper:
    """SIGTERM -> SIGTERM to the run's group, then SIGKILL to it after `grace_s` unless the group is gone."""

    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.pgid: int | None = None
        self.thread: threading.Thread | None = None
        self.killed = False

    def handle(self, signum: int, frame: Any) -> None:
        if self.thread is None:
            self.thread = threading.Thread(target=self._stop, daemon=True)
            self.thread.start()

    def _stop(self) -> None:
        while self.pgid is None:  # the signal came while the run was being started
            time.sleep(0.05)
        _signal_group(self.pgid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace_s
        while time.monotonic() < deadline:
            if not _group_alive(self.pgid):
                return
            time.sleep(0.1)
        if _signal_group(self.pgid, signal.SIGKILL):
            self.killed = True


def _signal_group(pgid: int, signum: int) -> bool:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        return False
    return True


def _group_alive(pgid: int) -> bool:
    """Some process of the group still exists (the leader is reaped by wait() in the main thread)."""
    return _signal_group(pgid, 0)


def main(folder: Path, attempt: int) -> int:
    info = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    stopper = Stopper(float(info.get("grace_s", 60.0)))
    signal.signal(signal.SIGTERM, stopper.handle)
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    with (folder / PROCESS_LOG).open("ab") as log:
        log.write(f"=== attempt {attempt}: {display_command(info['args'])}\n".encode())
        log.flush()
        child = subprocess.Popen(
            [sys.executable, "-m", "lmforge", *info["args"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_own_group,
        )
        stopper.pgid = child.pid
        returncode = child.wait()
        if stopper.thread is not None:  # an abort: nothing of the run outlives it (grace period, then SIGKILL)
            stopper.thread.join()
        killed = stopper.killed and returncode == -signal.SIGKILL
        ended = "killed with SIGKILL" if killed else f"ended with exit status {returncode}"
        log.write(f"=== attempt {attempt} {ended}\n".encode())
    record = {"returncode": returncode, "killed": killed, "ended": time.time()}
    staging = folder / f".exit-{attempt}.tmp"
    staging.write_text(json.dumps(record), encoding="utf-8")
    os.replace(staging, folder / f"exit-{attempt}.json")
    return 0


def _own_group() -> None:
    """In the run's process: lead a new process group (Abort reaches every process the run starts, and not the
    supervisor), and react to SIGTERM/SIGINT as usual rather than with the supervisor's handlers."""
    os.setpgid(0, 0)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
