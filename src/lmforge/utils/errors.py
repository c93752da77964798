"""User-facing errors.

Everything a user can cause (bad config, bad data, bad paths) raises a subclass of `LmforgeError`. The CLI
prints these as one readable message and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

import difflib
import errno
import shutil
from collections.abc import Iterable
from pathlib import Path


class LmforgeError(Exception):
    """An error caused by the user's input; its message says what was wrong and what was expected."""


class ConfigError(LmforgeError):
    """Invalid configuration: unknown key, wrong type, conflicting options."""


class DataError(LmforgeError):
    """Invalid or unusable training data: parse errors, missing columns, nothing left to train on."""


class CheckpointError(LmforgeError):
    """A run directory or checkpoint that cannot be used as asked (not empty, incomplete, corrupted)."""


# errno values that mean "the machine, not lmforge": reported as messages, not tracebacks
_WRITE_ERRNOS = {errno.EACCES: "permission denied", errno.EROFS: "read-only file system", errno.EPERM: "not permitted"}
_DISK_FULL_TEXT = ("No space left on device", "unexpected pos", "file write failed")  # torch's zip writer words


def disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(exc, (OSError, RuntimeError)) and any(text in str(exc) for text in _DISK_FULL_TEXT)


def environment_error(exc: BaseException, folder: str | Path | None = None) -> str | None:
    """A one-line message for failures the machine causes (disk full, unwritable folder, a template the sandbox
    stopped), or None for anything else. `folder`: where the command was writing, for the free-space figure."""
    if disk_full(exc):
        where = getattr(exc, "filename", None) or folder
        free = ""
        if folder is not None and Path(folder).exists():
            free = f" ({shutil.disk_usage(folder).free / 2**30:.2f} GiB free there now)"
        return (
            f"no space left on device while writing {where or 'the output'}{free}; free some space or write to "
            f"another disk, then rerun (a run resumes from its last complete checkpoint with --resume)"
        )
    if isinstance(exc, OSError) and exc.errno in _WRITE_ERRNOS:
        return f"cannot write {exc.filename or folder}: {_WRITE_ERRNOS[exc.errno]}; choose a folder you can write to"
    if type(exc).__name__ == "SecurityError":  # jinja2's sandbox stopped a chat template
        return f"the chat template attempted an operation the sandbox forbids and was stopped: {exc}"
    return None


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
