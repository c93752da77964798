"""Ranks of one run check train.output_dir at the same moment: one rank's write probe is not content to another."""

from __future__ import annotations

from pathlib import Path

from lmforge.training.run_dir import failed_at_startup
from lmforge.utils.paths import WRITE_PROBE, ensure_writable_dir, listing


def test_another_process_write_probe_does_not_make_a_folder_non_empty(tmp_path: Path) -> None:
    out = tmp_path / "out"
    ensure_writable_dir(out, "train.output_dir")
    assert listing(out) == "" and not list(out.iterdir())  # our own probe is gone
    (out / f"{WRITE_PROBE}12345").write_bytes(b"")  # a probe of another rank, caught mid-check
    assert listing(out) == "" and failed_at_startup(out)
    (out / "model.safetensors").write_bytes(b"x")  # negative control: real content is seen
    assert listing(out) == "model.safetensors" and not failed_at_startup(out)
