"""Cross-field rules: each rule rejects its bad combination and names the options involved."""

from __future__ import annotations

import pytest

from lmforge.config import checks
from lmforge.config.config_loading import build_dataclass
from lmforge.config.schema import RunConfig
from lmforge.utils.errors import ConfigError

VALID = {
    "stage": "sft",
    "model": {"name_or_path": "m"},
    "data": {"datasets": ["d"]},
    "method": {"name": "lora"},
    "train": {"output_dir": "out"},
}


def make(**sections: dict) -> RunConfig:
    raw = {k: (dict(v) if isinstance(v, dict) else v) for k, v in VALID.items()}
    for key, value in sections.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) else value
    return build_dataclass(RunConfig, raw, where="")


def test_valid_config_passes_every_rule() -> None:
    checks.check_config(make())


@pytest.mark.parametrize(
    ("rule", "cfg", "message"),
    [
        (checks.check_stage_known, make(stage="stf"), 'did you mean "sft"'),
        (checks.check_method_known, make(method={"name": "lroa"}), 'did you mean "lora"'),
        (checks.check_model_given, make(model={"name_or_path": ""}), "model.name_or_path is required"),
        (checks.check_datasets_given, make(data={"datasets": []}), "data.datasets is required"),
        (
            checks.check_datasets_given,
            make(data={"datasets": [{"path": "x", "format": "csvv"}]}),
            r"data.datasets\[0\].format",
        ),
        (checks.check_output_dir_given, make(train={"output_dir": ""}), "train.output_dir is required"),
        (checks.check_lengths, make(data={"cutoff_len": 1}), "cutoff_len must be at least 2"),
        (
            checks.check_packing_options,
            make(data={"packing": True}, model={"attn_implementation": "flex_attention"}),
            "data.packing .* model.attn_implementation",
        ),
        (checks.check_streaming_needs_max_steps, make(data={"streaming": True}), "train.max_steps"),
        (
            checks.check_interleave_probs,
            make(data={"interleave_probs": [1.0]}),
            "mix_strategy is concat",
        ),
        (
            checks.check_interleave_probs,
            make(data={"interleave_probs": [0.5, 0.4], "mix_strategy": "interleave_under", "datasets": ["a", "b"]}),
            "must sum to 1",
        ),
        (
            checks.check_adapter_continues,
            make(model={"adapter_name_or_path": "a"}, method={"name": "full"}),
            "needs method.name: lora",
        ),
        (
            checks.check_half_precision_needs_autocast,
            make(model={"dtype": "bfloat16"}, method={"name": "full"}),
            "set train.bf16: true",
        ),
        (checks.check_training_numbers, make(train={"learning_rate": -1}), r"train\.learning_rate must be >= 0"),
        (
            checks.check_training_numbers,
            make(train={"per_device_train_batch_size": 0}),
            r"train\.per_device_train_batch_size must be at least 1",
        ),
        (checks.check_training_numbers, make(train={"gradient_accumulation_steps": 0}), "at least 1"),
        (checks.check_training_numbers, make(train={"num_train_epochs": 0}), "num_train_epochs must be > 0"),
        (checks.check_adapter_numbers, make(method={"lora_rank": 0}), r"method\.lora_rank must be at least 1"),
        (checks.check_adapter_numbers, make(method={"lora_dropout": 1.0}), r"lora_dropout must be in \[0, 1\)"),
        (checks.check_loggers_installed, make(train={"report_to": "no_such_tracker_pkg"}), None),
    ],
)
def test_rule_rejects_bad_combination(rule, cfg: RunConfig, message: str | None) -> None:
    if message is None:  # a case the rule must accept (negative control)
        rule(cfg)
        return
    with pytest.raises(ConfigError, match=message):
        rule(cfg)


def test_a_tracker_that_is_not_installed_is_named_with_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(checks.LOGGER_PACKAGES, "wandb", ("lmforge_no_such_module", "wandb"))
    for report_to in ("wandb", ["tensorboard", "wandb"]):
        with pytest.raises(ConfigError, match=r"report_to: wandb needs .*pip install 'lmforge\[wandb\]'"):
            checks.check_loggers_installed(make(train={"report_to": report_to}))
    checks.check_loggers_installed(make(train={"report_to": ["tensorboard"]}))


def test_bad_numbers_are_refused_before_anything_loads(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    """lr -1, batch 0, lora_rank 0 used to surface as tracebacks after data and model load."""
    from lmforge.cli import main

    for override in ("train.learning_rate=-1", "train.per_device_train_batch_size=0", "method.lora_rank=0"):
        args = ["train", "model.name_or_path=/nonexistent", "data.datasets=[d]", f"train.output_dir={tmp_path}"]
        assert main([*args[:1], str(_write(tmp_path)), *args[1:], override]) == 2
        assert capsys.readouterr().err.startswith("lmforge: error: ")
    assert list(tmp_path.iterdir()) == [tmp_path / "c.yaml"]


def _write(tmp_path) -> object:
    path = tmp_path / "c.yaml"
    path.write_text("stage: sft\n")
    return path


def test_every_rule_is_registered() -> None:
    defined = {name for name in dir(checks) if name.startswith("check_") and name != "check_config"}
    assert defined == {rule.__name__ for rule in checks.RULES}


def test_half_precision_with_autocast_or_lora_is_accepted() -> None:
    checks.check_half_precision_needs_autocast(
        make(model={"dtype": "bfloat16"}, method={"name": "full"}, train={"bf16": True})
    )
    checks.check_half_precision_needs_autocast(make(model={"dtype": "float16"}, method={"name": "lora"}))
