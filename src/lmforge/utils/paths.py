"""Path questions asked before anything is deleted or overwritten."""

from __future__ import annotations

import os
from pathlib import Path

from lmforge.utils.errors import LmforgeError


def overlaps(path: str | Path, folder: str | Path) -> bool:
    """True when `path` is `folder`, lies inside it, or contains it: deleting either would delete (part of) the
    other. Paths that do not exist locally (hub ids) never overlap."""
    a, b = Path(path).expanduser(), Path(folder).expanduser()
    if not a.exists() or not b.exists():
        return False
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents or a in b.parents


def meant_as_local_path(name: str, data_suffixes: tuple[str, ...] = ()) -> bool:
    """A name that does not exist but was clearly meant as a local path, not a hub id: absolute or relative
    markers, more than one '/', a data-file suffix, or a first component that is a local folder (runs/x)."""
    if os.path.exists(os.path.expanduser(name)):
        return False
    parts = name.split("/")
    return (
        name.startswith(("/", "./", "../", "~"))
        or len(parts) > 2
        or (len(parts) == 2 and os.path.isdir(parts[0]))
        or Path(name).suffix.lower() in data_suffixes
    )


WRITE_PROBE = ".lmforge-write-probe-"  # listings skip these: another rank's probe is not content


def ensure_writable_dir(folder: str | Path, what: str) -> None:
    """Create `folder` and write a probe file in it now, so an unwritable destination fails before the work."""
    from lmforge.utils.errors import ConfigError

    path = Path(folder).expanduser()
    probe = path / f"{WRITE_PROBE}{os.getpid()}"  # per process: ranks of one run probe the same folder at once
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what} {str(path)!r} is not writable: {exc.strerror or exc}") from None


def listing(folder: Path, limit: int = 3) -> str:
    """'a, b, c, ...': the first entries of a folder, for messages about what would be touched."""
    entries = sorted(name for name in entry_names(folder))
    return ", ".join(entries[:limit]) + (", ..." if len(entries) > limit else "")


def entry_names(folder: Path) -> set[str]:
    """The names in `folder`, without write probes that a concurrent process may hold there for an instant."""
    return {p.name for p in folder.iterdir() if not p.name.startswith(WRITE_PROBE)}


def read_key_file(path: str, label: str, error: type[LmforgeError] = LmforgeError) -> str:
    """The first line of a key file (keeps secrets out of the process list and configs); `label` names the
    option in the error (`--api-key-file`, `generator.api_key_file`)."""
    try:
        with open(path, encoding="utf-8") as handle:
            key = handle.readline().strip()
    except OSError as exc:
        raise error(f"{label} {path}: {exc.strerror}") from None
    if not key:
        raise error(f"{label} {path}: the first line is empty")
    return key
