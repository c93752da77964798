"""The Makefile keeps the user's environment as `make quickstart` made it: tests run in their own venv."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def dry_run(target: str) -> list[str]:
    """The commands `make TARGET` would run on a fresh clone (no venv yet)."""
    # run as a top-level make even when the suite itself runs under `make test` (no inherited flags, no
    # "Entering directory" lines)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    out = subprocess.run(
        ["make", "--no-print-directory", "-n", "-B", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=env,
    ).stdout.splitlines()
    return [line for line in out if line.strip()]


def test_make_test_installs_dev_extras_only_into_the_test_venv() -> None:
    commands = dry_run("test")
    dev = [c for c in commands if "lock-dev.txt" in c]
    assert dev and all(c.startswith(".venv-test/bin/python") for c in dev)
    assert not [c for c in commands if c.startswith(".venv/")], "make test touches the user's .venv"
    assert commands[-1] == ".venv-test/bin/python -m pytest"


def test_make_quickstart_never_installs_test_tools_or_extras() -> None:
    commands = dry_run("quickstart")
    assert not [c for c in commands if "lock-dev" in c or ".venv-test" in c or "bitsandbytes" in c]
    assert any(c.endswith("-r requirements/lock.txt") and c.startswith(".venv/bin/python") for c in commands)


def test_make_lint_runs_ruff_check_format_check_and_pinned_mypy() -> None:
    commands = dry_run("lint")[-3:]
    assert commands == [
        ".venv-test/bin/ruff check src tests bench examples docs/*.py",
        ".venv-test/bin/ruff format --check src tests bench examples docs/*.py",
        ".venv-test/bin/mypy src",
    ]
    pins = (ROOT / "requirements/lock-dev.txt").read_text().splitlines()
    assert any(line.startswith("mypy==") for line in pins)


def test_lock_keeps_bitsandbytes_out_of_the_user_environment() -> None:
    lock = (ROOT / "requirements/lock.txt").read_text()
    assert "bitsandbytes" not in lock and "bitsandbytes" in (ROOT / "requirements/lock-dev.txt").read_text()


def test_ci_lints_then_runs_exactly_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    setup = readme.split("## Set up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in setup.strip().splitlines()]
    assert commands == ["make quickstart", "make test"]
    ci = [
        line
        for line in (ROOT / ".ci/run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd "))
    ]
    assert ci[-2:] == ["make lint", "make test"]  # lint, then the test command
    # before them only the apt step for the browser test's chromium
    assert not any("make" in line or "pytest" in line for line in ci[:-2])
    assert "apt-get install -y -qq chromium chromium-driver" in "\n".join(ci)
