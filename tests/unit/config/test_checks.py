"""Cross-field rules: each rule rejects its bad combination and names the options involved."""

from __future__ import annotations

import pytest

from lmforge.config import checks
from lmforge.config.loading import build_dataclass
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
            checks.check_lora_only_options,
            make(model={"adapter_name_or_path": "a"}, method={"name": "full"}),
            "needs method.name: lora",
        ),
        (
            checks.check_half_precision_needs_autocast,
            make(model={"dtype": "bfloat16"}, method={"name": "full"}),
            "set train.bf16: true",
        ),
    ],
)
def test_rule_rejects_bad_combination(rule, cfg: RunConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        rule(cfg)


def test_every_rule_is_registered() -> None:
    defined = {name for name in dir(checks) if name.startswith("check_") and name != "check_config"}
    assert defined == {rule.__name__ for rule in checks.RULES}


def test_half_precision_with_autocast_or_lora_is_accepted() -> None:
    checks.check_half_precision_needs_autocast(
        make(model={"dtype": "bfloat16"}, method={"name": "full"}, train={"bf16": True})
    )
    checks.check_half_precision_needs_autocast(make(model={"dtype": "float16"}, method={"name": "lora"}))
