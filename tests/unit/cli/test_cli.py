"""The command line: help text, clean errors instead of tracebacks, and a light import."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from lmforge.cli import main
from lmforge.config.schema import DataConfig, DatasetSpec, MethodConfig, ModelConfig


def test_train_help_documents_every_config_key(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for cls in (ModelConfig, DataConfig, MethodConfig, DatasetSpec):
        for fld in dataclasses.fields(cls):
            assert f"  {fld.name} = " in text, f"{cls.__name__}.{fld.name} missing from `lmforge train --help`"
    assert "--resume" in text


def test_config_error_prints_one_line_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("stage: sft\ntrain:\n  learning_rte: 1\n")
    assert main(["train", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmforge: error: unknown config key 'train.learning_rte'")
    assert "Traceback" not in err


def test_cli_import_does_not_load_torch() -> None:
    """`lmforge --help` must stay instant: the CLI module may not import torch/transformers at import time."""
    code = (
        "import sys, lmforge.cli; print(sorted(m for m in ('torch', 'transformers', 'datasets') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_module_entry_point_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "lmforge", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith("lmforge ")


@pytest.mark.parametrize(
    ("argv", "overrides"),
    [
        (["train", "c.yaml", "--resume", "train.max_steps=5"], ["train.max_steps=5"]),
        (["train", "c.yaml", "a.b=1", "--force-resume", "c.d=2"], ["a.b=1", "c.d=2"]),
        (["data", "preview", "c.yaml", "--n", "1", "data.cutoff_len=128"], ["data.cutoff_len=128"]),
        (["eval", "c.yaml", "--task", "perplexity", "output_dir=x"], ["output_dir=x"]),
    ],
)
def test_overrides_may_follow_flags(argv: list[str], overrides: list[str]) -> None:
    from lmforge.cli import build_parser, parse_args

    assert parse_args(build_parser(), argv).overrides == overrides


def test_unknown_argument_shows_the_subcommand_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["data", "preview", "c.yaml", "--bogus"])
    err = capsys.readouterr().err
    assert err.startswith("usage: lmforge data preview") and "unrecognized arguments: --bogus" in err
