"""Atomic checkpoints: staged in `checkpoint-N.tmp/`, sealed by a hashed manifest, renamed into place.

A checkpoint counts as complete only when `lmforge_complete.json` exists in it. The marker holds the sha256 of
every other file, is written last (after every file and the folder are fsync'ed) and the folder is renamed from
`checkpoint-N.tmp` to `checkpoint-N` only after that, so a crash at any point leaves either a `.tmp` folder or a
checkpoint without a marker, both of which resume skips. Rotation (`save_total_limit`) only ever considers complete
checkpoints and runs after the new marker exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from pathlib import Path

from lmforge.utils.errors import CheckpointError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

MARKER = "lmforge_complete.json"
STAGING_SUFFIX = ".tmp"
_CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
_HASH_CHUNK = 1 << 20


def checkpoint_step(path: str | Path) -> int | None:
    """The step number of a `checkpoint-N` folder name, or None for anything else (including `.tmp`)."""
    match = _CHECKPOINT_RE.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(output_dir: str | Path) -> list[Path]:
    """`checkpoint-N` folders (complete or not), newest step first."""
    root = Path(output_dir)
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and checkpoint_step(p) is not None]
    return sorted(found, key=lambda p: checkpoint_step(p) or 0, reverse=True)


def is_complete(checkpoint: str | Path) -> bool:
    return (Path(checkpoint) / MARKER).is_file()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_path(path: Path) -> None:
    """fsync a file or a folder (the folder's entry list), so a rename after it cannot outrun the data."""
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MARKER)


def seal_checkpoint(staging: Path, final: Path, step: int) -> Path:
    """Hash and fsync every file in `staging`, write the marker, then rename it to `final` (replacing it)."""
    files = _files_in(staging)
    manifest = {}
    for path in files:
        _fsync_path(path)
        manifest[path.relative_to(staging).as_posix()] = sha256_file(path)
    for folder in sorted({p.parent for p in files} | {staging}, key=lambda p: len(p.parts), reverse=True):
        _fsync_path(folder)
    marker = staging / MARKER
    marker.write_text(json.dumps({"step": step, "created": time.time(), "files": manifest}, indent=1))
    _fsync_path(marker)
    _fsync_path(staging)
    if final.exists():  # the same step saved again (e.g. after a resume): the new copy wins
        shutil.rmtree(final)
    os.replace(staging, final)
    _fsync_path(final.parent)
    return final


def verify_checkpoint(checkpoint: Path) -> None:
    """Compare every file against the marker's manifest; a missing or changed file is a CheckpointError."""
    marker = checkpoint / MARKER
    try:
        manifest = json.loads(marker.read_text())["files"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"{marker}: unreadable completion marker ({exc}); delete {checkpoint}") from None
    for name, expected in manifest.items():
        path = checkpoint / name
        if not path.is_file():
            raise CheckpointError(f"{path}: listed in {MARKER} but missing; the checkpoint was modified after saving")
        if sha256_file(path) != expected:
            raise CheckpointError(
                f"{path}: sha256 does not match {MARKER}; the file was modified or corrupted after saving. "
                f"Delete {checkpoint} to resume from an older checkpoint."
            )


def find_resume_checkpoint(output_dir: str | Path, verify: bool = True) -> str | None:
    """The newest complete checkpoint in `output_dir` (verified against its manifest), or None."""
    for staging in sorted(Path(output_dir).glob(f"checkpoint-*{STAGING_SUFFIX}")):
        logger.warning("%s: incomplete, skipped (interrupted while saving)", staging)
    for checkpoint in list_checkpoints(output_dir):
        if not is_complete(checkpoint):
            logger.warning("%s: incomplete, skipped (no %s)", checkpoint, MARKER)
            continue
        if verify:
            verify_checkpoint(checkpoint)
        return str(checkpoint)
    return None


def clean_staging_dirs(output_dir: str | Path) -> None:
    """Delete `checkpoint-N.tmp` folders left by a save that was interrupted."""
    for staging in Path(output_dir).glob(f"checkpoint-*{STAGING_SUFFIX}"):
        if staging.is_dir():
            logger.warning("removing %s: a checkpoint save was interrupted there", staging)
            shutil.rmtree(staging)


def rotate_checkpoints(output_dir: str | Path, limit: int | None, keep: str | None = None) -> list[Path]:
    """Delete the oldest complete checkpoints beyond `limit`, never `keep` (the best one) nor incomplete ones."""
    if not limit or limit <= 0:
        return []
    complete = [p for p in list_checkpoints(output_dir) if is_complete(p)]
    protected = {Path(keep).resolve()} if keep else set()
    removed = []
    for old in complete[limit:]:
        if old.resolve() in protected:
            continue
        logger.info("deleting old checkpoint %s (save_total_limit=%d)", old, limit)
        shutil.rmtree(old)
        removed.append(old)
    return removed
