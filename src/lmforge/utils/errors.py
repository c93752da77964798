"""User-facing errors.

Everything a user can cause (bad config, bad data, bad paths) raises a subclass of `LmforgeError`. The CLI
prints these as one readable message and exits non-zero instead of showing a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LmforgeError(Exception):
    """An error caused by the user's input; its message says what was wrong and what was expected."""


class ConfigError(LmforgeError):
    """Invalid configuration: unknown key, wrong type, conflicting options."""


class DataError(LmforgeError):
    """Invalid or unusable training data: parse errors, missing columns, nothing left to train on."""


class CheckpointError(LmforgeError):
    """A run directory or checkpoint that cannot be used as asked (not empty, incomplete, corrupted)."""


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """Return ' (did you mean "x"?)' for the closest candidate, or '' when none is close."""
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""
