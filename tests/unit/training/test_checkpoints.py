"""Checkpoint sealing, verification, resume selection and rotation (QUALITY B4, B5)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from lmforge.training.checkpoints import (
    MARKER,
    clean_staging_dirs,
    find_resume_checkpoint,
    rotate_checkpoints,
    seal_checkpoint,
)
from lmforge.utils.errors import CheckpointError


def make_checkpoint(root: Path, step: int, complete: bool = True) -> Path:
    staging = root / f"checkpoint-{step}.tmp"
    (staging / "sub").mkdir(parents=True)
    (staging / "adapter_model.safetensors").write_bytes(bytes(range(256)) * step)
    (staging / "sub" / "rng_state.pth").write_bytes(b"rng%d" % step)
    if not complete:
        final = root / f"checkpoint-{step}"
        staging.rename(final)
        return final
    return seal_checkpoint(staging, root / f"checkpoint-{step}", step)


def test_seal_renames_staging_and_writes_manifest_of_every_file(tmp_path):
    final = make_checkpoint(tmp_path, 5)
    assert final.is_dir() and not (tmp_path / "checkpoint-5.tmp").exists()
    marker = json.loads((final / MARKER).read_text())
    assert marker["step"] == 5
    assert sorted(marker["files"]) == ["adapter_model.safetensors", "sub/rng_state.pth"]


def test_resume_picks_newest_complete_and_logs_incomplete_as_skipped(tmp_path, caplog, monkeypatch):
    make_checkpoint(tmp_path, 5)
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 15, complete=False)
    (tmp_path / "checkpoint-20.tmp").mkdir()
    monkeypatch.setattr(logging.getLogger("lmforge"), "propagate", True)
    with caplog.at_level(logging.WARNING, logger="lmforge"):
        found = find_resume_checkpoint(tmp_path)
    assert Path(found).name == "checkpoint-10"
    assert "checkpoint-15: incomplete, skipped" in caplog.text


def test_no_complete_checkpoint_gives_none(tmp_path):
    make_checkpoint(tmp_path, 15, complete=False)
    assert find_resume_checkpoint(tmp_path) is None
    assert find_resume_checkpoint(tmp_path / "missing") is None


def test_modified_file_is_an_error_naming_the_file(tmp_path):
    final = make_checkpoint(tmp_path, 5)
    (final / "sub" / "rng_state.pth").write_bytes(b"tampered")
    with pytest.raises(CheckpointError, match=r"rng_state\.pth: sha256 does not match"):
        find_resume_checkpoint(tmp_path)


def test_missing_file_is_an_error(tmp_path):
    final = make_checkpoint(tmp_path, 5)
    (final / "adapter_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"adapter_model\.safetensors: listed"):
        find_resume_checkpoint(tmp_path)


def test_rotation_keeps_newest_complete_and_never_touches_incomplete(tmp_path):
    for step in (5, 10, 15):
        make_checkpoint(tmp_path, step)
    incomplete = make_checkpoint(tmp_path, 20, complete=False)
    removed = rotate_checkpoints(tmp_path, limit=2)
    assert [p.name for p in removed] == ["checkpoint-5"]
    assert incomplete.exists() and (tmp_path / "checkpoint-10").exists()


def test_rotation_protects_best_checkpoint(tmp_path):
    for step in (5, 10, 15):
        make_checkpoint(tmp_path, step)
    rotate_checkpoints(tmp_path, limit=1, keep=str(tmp_path / "checkpoint-5"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-15", "checkpoint-5"]


def test_clean_staging_dirs_removes_only_tmp(tmp_path):
    make_checkpoint(tmp_path, 5)
    (tmp_path / "checkpoint-10.tmp").mkdir()
    clean_staging_dirs(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint-5"]
