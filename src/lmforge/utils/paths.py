"""Path questions asked before anything is deleted or overwritten."""

from __future__ import annotations

from pathlib import Path


def overlaps(path: str | Path, folder: str | Path) -> bool:
    """True when `path` is `folder`, lies inside it, or contains it: deleting either would delete (part of) the
    other. Paths that do not exist locally (hub ids) never overlap."""
    a, b = Path(path).expanduser(), Path(folder).expanduser()
    if not a.exists() or not b.exists():
        return False
    a, b = a.resolve(), b.resolve()
    return a == b or b in a.parents or a in b.parents


def listing(folder: Path, limit: int = 3) -> str:
    """'a, b, c, ...': the first entries of a folder, for messages about what would be touched."""
    entries = sorted(p.name for p in folder.iterdir())
    return ", ".join(entries[:limit]) + (", ..." if len(entries) > limit else "")
