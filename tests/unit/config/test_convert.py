"""Flat LLaMA-Factory YAML: recognised with a hint, and converted into an lmforge config that loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lmforge.cli import main
from lmforge.config import load_config
from lmforge.utils.errors import ConfigError

# examples/train_lora/llama3_lora_sft.yaml of LLaMA-Factory, as users copy it
LLAMAFACTORY_LORA_SFT = """\
### model
model_name_or_path: meta-llama/Meta-Llama-3-8B-Instruct
trust_remote_code: true

### method
stage: sft
do_train: true
finetuning_type: lora
lora_rank: 8
lora_target: all

### dataset
dataset: identity,alpaca_en_demo
template: llama3
cutoff_len: 2048
max_samples: 1000
overwrite_cache: true
preprocessing_num_workers: 16
dataloader_num_workers: 4

### output
output_dir: saves/llama3-8b/lora/sft
logging_steps: 10
save_steps: 500
plot_loss: true
overwrite_output_dir: true
save_only_model: false
report_to: none

### train
per_device_train_batch_size: 1
gradient_accumulation_steps: 8
learning_rate: 1.0e-4
num_train_epochs: 3.0
lr_scheduler_type: cosine
warmup_ratio: 0.1
bf16: true
ddp_timeout: 180000000
resume_from_checkpoint: null
"""


@pytest.fixture
def flat(tmp_path: Path) -> Path:
    path = tmp_path / "llama3_lora_sft.yaml"
    path.write_text(LLAMAFACTORY_LORA_SFT)
    return path


def test_flat_config_is_recognised_with_the_command_that_converts_it(flat: Path) -> None:
    with pytest.raises(ConfigError, match=r"looks like a flat LLaMA-Factory config .*lmforge convert-config"):
        load_config(flat)


def test_converted_config_loads_with_every_value_in_its_section(flat: Path, tmp_path: Path) -> None:
    out = tmp_path / "converted.yaml"
    assert main(["convert-config", str(flat), "--output", str(out)]) == 0
    cfg = load_config(out)
    assert (cfg.stage, cfg.model.name_or_path, cfg.model.trust_remote_code) == (
        "sft",
        "meta-llama/Meta-Llama-3-8B-Instruct",
        True,
    )
    assert (cfg.method.name, cfg.method.lora_rank, cfg.method.lora_target) == ("lora", 8, "all")
    assert cfg.data.datasets == ["identity", "alpaca_en_demo"] and cfg.data.num_proc == 16
    assert (cfg.data.template, cfg.data.cutoff_len, cfg.data.catalog) == ("llama3", 2048, "data/dataset_info.json")
    assert cfg.train["learning_rate"] == 1e-4 and cfg.train["gradient_accumulation_steps"] == 8
    assert cfg.train["overwrite_output_dir"] is True and cfg.train["dataloader_num_workers"] == 4
    header = out.read_text().split("stage:")[0]
    assert "do_train: dropped" in header and "plot_loss: dropped" in header
    assert main(["convert-config", str(flat), "--output", str(out)]) == 2  # never replaces a file


def test_qlora_and_attention_keys_map_onto_several_lmforge_keys(tmp_path: Path) -> None:
    from lmforge.config.convert import convert

    raw = yaml.safe_load(LLAMAFACTORY_LORA_SFT) | {"quantization_bit": 4, "flash_attn": "fa2", "lora_target": "q,v"}
    converted, notes = convert(raw | {"mystery_key": 1})
    assert converted["method"]["name"] == "qlora" and converted["method"]["quant_bits"] == 4
    assert converted["method"]["lora_target"] == ["q", "v"]
    assert converted["model"]["attn_implementation"] == "flash_attention_2"
    assert any(note.startswith("mystery_key") for note in notes)


def test_sectioned_config_is_not_mistaken_for_a_flat_one(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("stage: sft\nmodel:\n  name_or_path: m\ndata:\n  datasets: [d]\n  template: chatml\n")
    with pytest.raises(ConfigError, match=r"train\.output_dir is required"):
        load_config(path)
