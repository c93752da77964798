"""Catalogues: our YAML and LLaMA-Factory's dataset_info.json unchanged; paths stay inside the root (A13)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from lmforge.config.schema import DataConfig
from lmforge.data import readers
from lmforge.data.catalog import load_catalog, resolve_specs
from lmforge.data.pipeline import build_datasets
from lmforge.utils.errors import ConfigError, DataError

from .helpers import make_cfg

# LLaMA-Factory's own registry, shipped unchanged beside the demo files it names
LF_INFO = str(Path(__file__).resolve().parents[3] / "examples" / "data" / "dataset_info.json")
LF_DIR = os.path.dirname(LF_INFO)
NAMES = ["alpaca_en_demo", "glaive_toolcall_en_demo", "c4_demo", "wiki_demo", "dpo_en_demo", "kto_en_demo"]


def test_llamafactory_dataset_info_entries_map_to_our_formats():
    cat = {name: load_catalog(LF_INFO).spec(name) for name in NAMES}
    assert (cat["alpaca_en_demo"].format, cat["alpaca_en_demo"].path) == ("alpaca", f"{LF_DIR}/alpaca_en_demo.json")
    glaive = cat["glaive_toolcall_en_demo"]
    assert (glaive.format, glaive.columns) == ("sharegpt", {"messages": "conversations", "tools": "tools"})
    assert (cat["c4_demo"].format, cat["c4_demo"].columns) == ("text", {"text": "text"})
    assert cat["wiki_demo"].format == "text"
    assert cat["dpo_en_demo"].format == "preference" and cat["kto_en_demo"].format == "kto"
    assert cat["kto_en_demo"].tags["role_tag"] == "role"
    hub = load_catalog(LF_INFO).spec("alpaca_en")
    assert hub.path == "llamafactory/alpaca_en"
    with pytest.raises(DataError, match="multimodal columns"):
        load_catalog(LF_INFO).spec("mllm_demo")


@pytest.mark.parametrize(
    ("name", "stage", "rows"),
    [("glaive_toolcall_en_demo", "sft", 300), ("identity", "sft", 91), ("wiki_demo", "pt", 30)],
)
def test_llamafactory_entries_build(tmp_path, tokenizer, template, name, stage, rows):
    cfg = make_cfg(tmp_path, [name], stage=stage, catalog=LF_INFO, cutoff_len=4096, max_samples=rows)
    bundle = build_datasets(cfg, tokenizer, template if stage == "sft" else None)
    assert bundle.report.datasets[0].read == rows and len(bundle.train) > 0


def test_llamafactory_preference_entry_given_to_sft_is_a9(tmp_path, tokenizer, template):
    cfg = make_cfg(tmp_path, ["dpo_en_demo"], catalog=LF_INFO)
    with pytest.raises(DataError, match="dataset format preference does not match stage sft"):
        build_datasets(cfg, tokenizer, template)


def test_our_yaml_catalogue_and_unknown_name(tmp_path):
    (tmp_path / "data.json").write_text("[]")
    (tmp_path / "datasets.yaml").write_text("mine:\n  file_name: data.json\n  format: openai\n  max_samples: 5\n")
    specs = resolve_specs(["mine"], DataConfig(dataset_dir=str(tmp_path)), "data.datasets")
    assert (specs[0].name, specs[0].format, specs[0].max_samples) == ("mine", "openai", 5)
    with pytest.raises(ConfigError, match="unknown dataset 'mien' \\(did you mean \"mine\"\\?\\)"):
        resolve_specs(["mien"], DataConfig(dataset_dir=str(tmp_path)), "data.datasets")


def test_inline_entries_use_the_strict_spec_loader():
    specs = resolve_specs([{"path": "x/y.jsonl", "format": "text"}], DataConfig(), "data.datasets")
    assert (specs[0].name, specs[0].format) == ("y.jsonl", "text")
    with pytest.raises(ConfigError, match=re.escape("unknown config key 'data.datasets[0].colums'")):
        resolve_specs([{"path": "x", "colums": {}}], DataConfig(), "data.datasets")


@pytest.mark.parametrize("target", ["../../../etc/passwd", "/etc/passwd", "link.json"])
def test_a13_catalogue_paths_must_stay_inside_the_root(tmp_path, target):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "outside.json").write_text("[]")
    (root / "link.json").symlink_to(tmp_path / "outside.json")
    (root / "dataset_info.json").write_text(json.dumps({"evil": {"file_name": target}}))
    (root / "datasets.yaml").write_text(f"evil:\n  file_name: {target}\n")
    for catalogue in ("dataset_info.json", "datasets.yaml"):
        with pytest.raises(DataError, match="outside the dataset root"):
            load_catalog(root / catalogue).spec("evil")


def test_hub_ids_go_to_datasets_load_dataset(monkeypatch):
    calls = []

    def fake_load(path, name=None, split=None, streaming=False):
        calls.append((path, name, split, streaming))
        return [{"text": "hub row"}]

    import datasets

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    rows = list(
        readers.iter_source(
            "org/name", None, encoding="utf-8", on_bad_row="error", bad_rows=[], subset="en", split="train"
        )
    )
    assert rows == [{"text": "hub row"}] and calls == [("org/name", "en", "train", False)]
