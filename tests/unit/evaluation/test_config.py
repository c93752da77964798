"""The eval config: strict keys with did-you-mean, required keys, and every shipped configs/eval/*.yaml loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lmforge.evaluation.eval_config import load_eval_config, training_data_config
from lmforge.utils.errors import ConfigError
from tests.unit.evaluation.conftest import ROOT

SHIPPED = sorted((ROOT / "configs" / "eval").glob("*.yaml"))
BASE = ["model.name_or_path=m", "output_dir=o"]


def test_eval_configs_are_shipped_for_every_task_and_layout() -> None:
    configs = [load_eval_config(p) for p in SHIPPED]
    assert {c.task for c in configs} == {"perplexity", "generate", "choice"}
    assert {c.choice.layout for c in configs if c.task == "choice"} == {"mmlu", "ceval", "cmmlu"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_eval_config_loads_and_points_at_existing_files(path: Path) -> None:
    assert path.read_text(encoding="utf-8").startswith(f"# lmforge eval configs/eval/{path.name}")
    cfg = load_eval_config(path)
    assert cfg.output_dir and cfg.model.name_or_path
    if cfg.task == "choice":
        assert (ROOT / cfg.choice.benchmark_dir).is_dir()
        assert cfg.choice.categories is None or (ROOT / cfg.choice.categories).is_file()
    for entry in cfg.data.datasets:
        if isinstance(entry, dict):
            assert (ROOT / entry["path"]).is_file()
        else:
            assert entry in yaml.safe_load((ROOT / str(cfg.data.catalog)).read_text(encoding="utf-8"))


def test_unknown_key_is_an_error_with_a_hint() -> None:
    with pytest.raises(ConfigError, match=r"unknown config key 'choice.n_shots' \(did you mean \"n_shot\"\?\)"):
        load_eval_config(None, [*BASE, "task=choice", "choice.benchmark_dir=b", "choice.n_shots=3"])


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["output_dir=o"], "model.name_or_path is required"),
        (["model.name_or_path=m"], "output_dir is required"),
        ([*BASE, "task=perplexity"], "task perplexity needs data.datasets"),
        ([*BASE, "task=generate", "data.datasets=[x]", "data.stage=pt"], "data.stage must be sft"),
        ([*BASE, "task=choice"], "needs choice.benchmark_dir"),
        ([*BASE, "task=choice", "choice.benchmark_dir=b", "choice.split=dev"], "score val/test, or n_shot=0"),
        ([*BASE, "task=choice", "choice.benchmark_dir=b", "choice.layout=gaokao"], "'gaokao' is not one of"),
        ([*BASE, "task=choice", "choice.benchmark_dir=b", "batch_size=0"], "batch_size must be >= 1"),
    ],
)
def test_invalid_combinations_name_the_key(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_eval_config(None, overrides)


def test_data_section_maps_onto_the_training_data_config() -> None:
    cfg = load_eval_config(None, [*BASE, "data.datasets=[a]", "data.cutoff_len=64", "model.template=chatml"])
    data = training_data_config(cfg)
    assert (data.datasets, data.cutoff_len, data.template, data.packing) == (["a"], 64, "chatml", False)
