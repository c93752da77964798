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


@pytest.mark.parametrize(
    "argv",
    [
        ["train", "c.yaml"],
        ["data", "preview", "c.yaml"],
        ["chat", "--model", "m"],
        ["serve", "--model", "m"],
        ["export", "--model", "m", "--adapter", "a", "--output", "o"],
        ["eval", "c.yaml"],
    ],
)
def test_every_model_loading_command_takes_trust_remote_code(argv: list[str]) -> None:
    from lmforge.cli import build_parser, parse_args

    parser = build_parser()
    assert parse_args(parser, [*argv, "--trust-remote-code"]).trust_remote_code is True
    assert parse_args(parser, argv).trust_remote_code is False


@pytest.fixture
def custom_code_model(tiny_model_dir: Path, tmp_path: Path) -> Path:
    """The tiny model with an auto_map to a class defined in the folder: it loads only by running that file."""
    import json
    import shutil

    folder = tmp_path / "custom"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "custom_llama.py").write_text(
        "from transformers import LlamaForCausalLM\n\n\nclass CustomLlama(LlamaForCausalLM):\n    pass\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "custom_llama.CustomLlama"}
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_chat_runs_model_code_only_with_the_flag_it_names(
    custom_code_model: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    args = ["chat", "--model", str(custom_code_model), "--prompt", "hi", "--max-new-tokens", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("lmforge: error: ") and "--trust-remote-code" in err
    assert main([*args, "--trust-remote-code", "--temperature", "0"]) == 0
    assert "will run" in caplog.text and "custom_llama.py (sha256" in caplog.text  # announced before it runs


def test_top_level_help_names_every_stage_and_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "pt and sft with full, freeze or LoRA" not in text
    for word in ("dpo", "grpo", "LoRA/QLoRA", "export", "serve", "convert-config", "env"):
        assert word in text


def test_env_prints_versions_and_devices(capsys: pytest.CaptureFixture[str]) -> None:
    import torch
    import transformers

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert f"- torch: {torch.__version__}" in out and f"- transformers: {transformers.__version__}" in out
    assert "- device: cpu (" in out and "- swanlab: " in out


@pytest.mark.parametrize(
    ("model", "adapter", "explicit", "name"),
    [
        ("runs/quickstart/pt", None, None, "pt"),
        ("runs/quickstart/pt", "runs/quickstart/sft/", None, "sft"),
        ("runs/quickstart/pt", "runs/quickstart/sft", "forge", "forge"),
    ],
)
def test_served_model_is_named_after_the_adapter_when_there_is_one(model, adapter, explicit, name) -> None:
    from lmforge.cli import served_model_name

    assert served_model_name(model, adapter, explicit) == name


def test_data_list_names_every_catalogue_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    import yaml

    root = Path(__file__).resolve().parents[3]
    catalog = root / "examples/data/datasets.yaml"
    assert main(["data", "list", "--catalog", str(catalog)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == sorted(yaml.safe_load(catalog.read_text()))
    assert any(line.split()[:2] == ["identity_forge", "alpaca"] for line in lines)


def _preview_config(tmp_path: Path, model: Path, template: str) -> Path:
    import json

    (tmp_path / "qa.json").write_text(json.dumps([{"instruction": "q", "output": "a"}] * 2))
    config = tmp_path / f"{template}.yaml"
    config.write_text(
        f"model:\n  name_or_path: {model}\ndata:\n  datasets: [{{path: {tmp_path / 'qa.json'}}}]\n"
        f"  template: {template}\n  cache_dir: {tmp_path / 'cache'}\ntrain:\n  output_dir: {tmp_path / 'out'}\n"
    )
    return config


def test_data_preview_warns_when_the_template_differs_from_the_tokenizers(
    tmp_path: Path, tiny_model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "preview", str(_preview_config(tmp_path, tiny_model_dir, "llama3")), "--n", "1"]) == 0
    assert "warning: " in capsys.readouterr().out
    assert main(["data", "preview", str(_preview_config(tmp_path, tiny_model_dir, "chatml")), "--n", "1"]) == 0
    assert "warning: " not in capsys.readouterr().out  # negative control: the tokenizer's own family
