"""`python -m lmforge.ui.supervise JOB_FOLDER ATTEMPT`: run one attempt of a UI job and record how it ended.

Started by the UI in a new process group. It runs `python -m lmforge ARGS` (the arguments from job.json, a list,
no shell) in the same group with output appended to process.log, ignores the termination signals the group gets on
Abort (lmforge itself handles them: checkpoint, then exit), and writes exit-ATTEMPT.json with the exit status,
which is how a UI started later knows whether the run finished, stopped or failed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from lmforge.ui.jobs import JOB_FILE, PROCESS_LOG, display_command


def main(folder: Path, attempt: int) -> int:
    info = json.loads((folder / JOB_FILE).read_text(encoding="utf-8"))
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_IGN)
    with (folder / PROCESS_LOG).open("ab") as log:
        log.write(f"=== attempt {attempt}: {display_command(info['args'])}\n".encode())
        log.flush()
        child = subprocess.Popen(
            [sys.executable, "-m", "lmforge", *info["args"]],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_default_signals,
        )
        returncode = child.wait()
        log.write(f"=== attempt {attempt} ended with exit status {returncode}\n".encode())
    exit_file = folder / f"exit-{attempt}.json"
    staging = folder / f".exit-{attempt}.tmp"
    staging.write_text(json.dumps({"returncode": returncode, "ended": time.time()}), encoding="utf-8")
    os.replace(staging, exit_file)
    return 0


def _default_signals() -> None:
    """The child must react to SIGTERM/SIGINT as usual, not inherit the supervisor's 'ignore'."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), int(sys.argv[2])))
