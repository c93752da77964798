"""Every README command runs as written: it parses, names files that exist, and uses only runs/ folders an
earlier command (or `make quickstart`) made. The cheap ones (help, env, init-model) are run."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lmforge.cli import build_parser, parse_args

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z_]{2,}\b|\$")  # BASE, SFT_MODEL, "$KEY": the reader fills them in
QUICKSTART_OUTPUTS = {"runs/quickstart/base", "runs/quickstart/pt", "runs/quickstart/sft"}
INPUT_FLAGS = ("--model", "--adapter", "--base")


def readme_commands() -> list[list[str]]:
    """The lmforge commands of the README's bash blocks, in order, as argv after `lmforge`."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if not shlex.split(line, comments=True):
                continue
            for part in line.split("|"):
                words = shlex.split(part, comments=True)
                if "lmforge" in words[:3] and words[0] != "torchrun":
                    commands.append(words[words.index("lmforge") + 1 :])
    return commands


COMMANDS = readme_commands()
RUNS = [a for a in COMMANDS if "--help" not in a]  # what a user runs; the help pages are run below


def test_the_readme_has_commands_for_every_subcommand() -> None:
    used = {argv[0] for argv in COMMANDS}
    assert {"train", "data", "init-model", "export", "chat", "eval", "serve", "tokenizer"} <= used


@pytest.mark.parametrize("argv", RUNS, ids=[" ".join(a)[:60] for a in RUNS])
def test_readme_command_parses_and_names_existing_files(argv: list[str]) -> None:
    args = parse_args(build_parser(), argv)
    for word in argv:
        value = word.split("=", 1)[-1]
        if value.startswith(("configs/", "examples/")) and not PLACEHOLDER.search(value):
            assert (ROOT / value).exists(), f"{' '.join(argv)}: {value} does not exist"
    if getattr(args, "config", None) and str(args.config).endswith(".yaml") and not PLACEHOLDER.search(args.config):
        assert (ROOT / args.config).is_file()


def _config(argv: list[str]) -> dict:
    """The YAML config a train/eval command names, with its dotted overrides applied (two levels)."""
    named = len(argv) > 1 and argv[1].endswith(".yaml") and not PLACEHOLDER.search(argv[1])
    config = yaml.safe_load((ROOT / argv[1]).read_text()) if named else {}
    for word in argv[2:]:
        key, sep, value = word.partition("=")
        if sep and "." in key:
            section, name = key.split(".", 1)
            config.setdefault(section, {})[name] = value
    return config


def _reads_and_makes(argv: list[str]) -> tuple[dict[str, str], dict[str, str | None]]:
    """({role: runs/ path read}, {runs/ path made: the base model it was trained from, if any})."""
    config = _config(argv)
    model = config.get("model", {})
    reads = {flag: argv[i + 1] for i, flag in enumerate(argv[:-1]) if flag in INPUT_FLAGS}
    reads.setdefault("--model", model.get("name_or_path"))
    reads.setdefault("--adapter", model.get("adapter_name_or_path"))
    made: dict[str, str | None] = {}
    if "--output" in argv:
        made[argv[argv.index("--output") + 1]] = None
    if argv[0] == "train":
        made[config["train"]["output_dir"]] = model["name_or_path"]
    return {k: v for k, v in reads.items() if v}, made


def test_readme_chain_only_reads_runs_an_earlier_command_made() -> None:
    """An input under runs/ was made by an earlier command, and an adapter is applied to the base it was trained
    on (the README once exported runs/sft-lora onto runs/tiny-base, a different model)."""
    made: dict[str, str | None] = dict.fromkeys(QUICKSTART_OUTPUTS)
    made["runs/quickstart/sft"] = "runs/quickstart/pt"
    for argv in RUNS:
        reads, makes = _reads_and_makes(argv)
        command = f"`lmforge {' '.join(argv)}`"
        for path in reads.values():
            if path.startswith("runs/") and not PLACEHOLDER.search(path):
                assert path in made, f"{command} reads {path}, which no earlier README command makes"
        adapter, model = reads.get("--adapter"), reads.get("--model")
        if adapter in made and made[adapter] and model and argv[0] != "train":
            assert model == made[adapter], f"{command}: {adapter} was trained on {made[adapter]}, not {model}"
        made |= makes


CHEAP = [a for a in COMMANDS if "--help" in a or a[0] in ("env", "init-model")]


@pytest.mark.parametrize("argv", CHEAP, ids=[" ".join(a)[:60] for a in CHEAP])
def test_cheap_readme_commands_run_as_written(argv: list[str], tmp_path: Path) -> None:
    for name in ("configs", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "lmforge", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
