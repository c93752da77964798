"""Every YAML config we ship loads and validates, and names datasets its catalogue defines."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lmforge.config import load_config

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = sorted(
    p
    for pattern in (
        "configs/pt/*.yaml",
        "configs/sft/*.yaml",
        *(f"configs/{stage}/*.yaml" for stage in ("rm", "dpo", "kto", "orpo", "simpo", "ppo", "grpo")),
        "examples/**/*.yaml",
        "bench/configs/*.yaml",
    )
    for p in ROOT.glob(pattern)
    if p.name != "datasets.yaml"
)


def test_configs_are_shipped() -> None:
    assert len(SHIPPED) >= 5


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_config_loads_and_validates(path: Path) -> None:
    cfg = load_config(path)
    assert cfg.output_dir
    if cfg.data.catalog:
        catalog = yaml.safe_load((ROOT / cfg.data.catalog).read_text())
        for name in cfg.data.datasets:
            if isinstance(name, str):
                assert name in catalog, f"{path.name}: dataset {name!r} missing from {cfg.data.catalog}"


@pytest.mark.parametrize("path", sorted(ROOT.glob("configs/deepspeed/*.json")), ids=lambda p: p.name)
def test_deepspeed_configs_parse(path: Path) -> None:
    import json

    ds = json.loads(path.read_text())
    assert ds["zero_optimization"]["stage"] in (2, 3)
