"""Cross-field rules of the preference stages: each refuses its bad combination naming the options involved."""

from __future__ import annotations

import pytest

from lmforge.config import checks
from lmforge.config.config_loading import build_dataclass
from lmforge.config.schema import RunConfig
from lmforge.utils.errors import ConfigError


def make(stage: str = "dpo", method: str = "lora", **sections: dict) -> RunConfig:
    raw = {
        "stage": stage,
        "model": {"name_or_path": "m"},
        "data": {"datasets": ["d"]},
        "method": {"name": method},
        "train": {"output_dir": "out"},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value}
    return build_dataclass(RunConfig, raw, where="")


@pytest.mark.parametrize("stage", ["rm", "dpo", "kto", "orpo", "simpo"])
def test_valid_preference_configs_pass_every_rule(stage):
    checks.check_config(make(stage))


@pytest.mark.parametrize(
    ("rule", "cfg", "message"),
    [
        (checks.check_pref_loss_options, make("kto", pref={"loss": "ipo"}), "pref.loss: 'ipo' is a dpo loss"),
        (
            checks.check_pref_loss_options,
            make("dpo", pref={"loss": "hinge", "label_smoothing": 0.1}),
            "pref.label_smoothing needs stage dpo with pref.loss: sigmoid",
        ),
        (checks.check_pref_loss_options, make("dpo", pref={"label_smoothing": 0.5}), r"must be in \[0, 0.5\)"),
        (checks.check_pref_loss_options, make("dpo", pref={"beta": 0}), "pref.beta must be > 0"),
        (
            checks.check_reference_options,
            make("orpo", pref={"precompute_ref_log_probs": True}),
            "pref.precompute_ref_log_probs needs stage dpo or kto",
        ),
        (
            checks.check_reference_options,
            make("dpo", "lora", pref={"reference_model": "ref"}),
            "pref.reference_model needs method.name full or freeze",
        ),
        (checks.check_preference_batches, make("dpo", data={"packing": True}), "data.packing is not supported"),
        (checks.check_preference_batches, make("rm", data={"train_on_prompt": True}), "data.train_on_prompt"),
        (checks.check_preference_batches, make("dpo", "prompt_tuning"), "prepends virtual tokens"),
    ],
)
def test_each_rule_rejects_its_bad_combination(rule, cfg, message):
    with pytest.raises(ConfigError, match=message):
        rule(cfg)


def test_pref_rules_are_registered():
    rules = {checks.check_pref_loss_options, checks.check_reference_options, checks.check_preference_batches}
    assert rules <= set(checks.RULES)
