"""Config loading: YAML + dotted overrides, strict keys with hints, type coercion, safe YAML."""

from __future__ import annotations

from pathlib import Path

import pytest

from lmforge.config import load_config
from lmforge.config.config_loading import apply_overrides, read_yaml
from lmforge.utils.errors import ConfigError

ISSUE_EXAMPLE = """\
stage: sft
model:
  name_or_path: runs/tiny-base
data:
  datasets: [alpaca_en_demo]
  catalog: examples/data/datasets.yaml
  template: chatml
  cutoff_len: 512
  val_size: 0.05
method:
  name: lora
  lora_rank: 8
  lora_alpha: 16
  lora_target: all
train:
  output_dir: runs/sft-demo
  per_device_train_batch_size: 4
  learning_rate: 2.0e-4
  max_steps: 30
"""


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "run.yaml"
    path.write_text(ISSUE_EXAMPLE)
    return path


def test_issue_example_loads_into_typed_sections(config_file: Path) -> None:
    cfg = load_config(config_file)
    assert cfg.stage == "sft"
    assert cfg.model.name_or_path == "runs/tiny-base"
    assert cfg.data.datasets == ["alpaca_en_demo"]
    assert cfg.data.cutoff_len == 512 and cfg.data.val_size == 0.05
    assert cfg.method.name == "lora" and cfg.method.lora_rank == 8 and cfg.method.lora_alpha == 16.0
    assert cfg.train == {
        "output_dir": "runs/sft-demo",
        "per_device_train_batch_size": 4,
        "learning_rate": 2.0e-4,
        "max_steps": 30,
    }


def test_dotted_overrides_replace_values_and_parse_yaml_scalars(config_file: Path) -> None:
    cfg = load_config(
        config_file, ["train.learning_rate=1e-4", "method.lora_target=[q_proj, v_proj]", "data.cutoff_len=128"]
    )
    assert cfg.train["learning_rate"] == pytest.approx(1e-4)  # "1e-4" is a YAML string; coerced to float
    assert cfg.method.lora_target == ["q_proj", "v_proj"]
    assert cfg.data.cutoff_len == 128


def test_override_can_create_a_missing_section_key(config_file: Path) -> None:
    cfg = load_config(config_file, ["model.dtype=float32"])
    assert cfg.model.dtype == "float32"


@pytest.mark.parametrize(
    ("override", "hint"),
    [
        ("train.learning_rte=1", 'did you mean "learning_rate"'),
        ("data.cutof_len=1", 'did you mean "cutoff_len"'),
        ("methd.name=lora", 'did you mean "method"'),
    ],
)
def test_unknown_key_fails_with_did_you_mean(config_file: Path, override: str, hint: str) -> None:
    with pytest.raises(ConfigError, match=hint):
        load_config(config_file, [override])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.cutoff_len=abc", "data.cutoff_len: expected an integer"),
        ("data.packing=maybe", "data.packing: expected true or false"),
        ("model.dtype=float8", "model.dtype: 'float8' is not one of"),
        ("train.learning_rate=fast", "train.learning_rate: expected a number"),
    ],
)
def test_wrong_types_name_the_key(config_file: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, [override])


def test_config_is_frozen(config_file: Path) -> None:
    cfg = load_config(config_file)
    with pytest.raises(AttributeError):
        cfg.stage = "pt"  # type: ignore[misc]


def test_python_yaml_tags_are_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.yaml"
    path.write_text(f"stage: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(path)
    assert not marker.exists()


def test_override_without_equals_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        apply_overrides({}, ["train.max_steps"])


def test_missing_config_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_overwrite_output_dir_is_accepted_though_transformers_dropped_it(config_file: Path) -> None:
    cfg = load_config(config_file, ["train.overwrite_output_dir=true"])
    assert cfg.train["overwrite_output_dir"] is True
    with pytest.raises(ConfigError, match=r"train\.overwrite_output_dir: expected true or false"):
        load_config(config_file, ["train.overwrite_output_dir=yes please"])


@pytest.mark.parametrize("source", ["yaml", "override"])
def test_strategy_no_survives_yaml_1_1_booleans(tmp_path: Path, config_file: Path, source: str) -> None:
    """`eval_strategy: no` (as LLaMA-Factory users write it) is YAML 1.1 false; strategy fields read it as "no"."""
    from lmforge.training.arguments import build_training_arguments

    if source == "yaml":
        config_file.write_text(ISSUE_EXAMPLE + "  eval_strategy: no\n  save_strategy: no\n")
        cfg = load_config(config_file, [f"train.output_dir={tmp_path / 'out'}"])
    else:
        overrides = ["train.eval_strategy=no", "train.save_strategy=no", f"train.output_dir={tmp_path / 'out'}"]
        cfg = load_config(config_file, overrides)
    assert cfg.train["eval_strategy"] == "no" and cfg.train["save_strategy"] == "no"
    args = build_training_arguments(cfg)
    assert args.eval_strategy == "no" and args.save_strategy == "no"
