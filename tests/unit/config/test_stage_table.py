"""The stage table is the one declaration of a stage: everything that needs stage facts reads it."""

from __future__ import annotations

import inspect

import pytest

from lmforge.config.schema import STAGES
from lmforge.config.stages import STAGE_SPECS, stage_spec
from lmforge.data.encoders import ENCODERS, encoder_for
from lmforge.data.formats import FORMATS
from lmforge.utils.errors import DataError


@pytest.mark.parametrize("name", sorted(STAGE_SPECS))
def test_every_stage_run_resolves_to_a_run_function(name):
    run = stage_spec(name).load_run()
    assert list(inspect.signature(run).parameters) == ["cfg", "args", "resume"]


def test_config_schema_lists_exactly_the_table():
    assert tuple(STAGE_SPECS) == STAGES


@pytest.mark.parametrize("name", sorted(STAGE_SPECS))
def test_every_stage_data_kind_has_a_dataset_format(name):
    kind = stage_spec(name).data
    assert any(FORMATS.get(fmt).kind == kind for fmt in FORMATS)


@pytest.mark.parametrize("name", sorted(n for n, s in STAGE_SPECS.items() if not s.is_online_rl))
def test_every_offline_stage_has_one_encoder_for_its_kind(name):
    assert encoder_for(stage_spec(name).data).kind == stage_spec(name).data


def test_prompts_have_no_row_encoder():
    assert "prompts" not in ENCODERS
    with pytest.raises(DataError, match="prompts rows"):
        encoder_for("prompts")


def test_reference_use_follows_the_kl_coefficient_only_where_declared():
    assert stage_spec("dpo").needs_reference(0.0) and stage_spec("ppo").needs_reference(0.0)
    assert stage_spec("grpo").needs_reference(0.04) and not stage_spec("grpo").needs_reference(0.0)
    assert not stage_spec("orpo").needs_reference(0.1)  # negative control: reference-free stage


def test_token_counting_comes_from_the_data_kind():
    assert stage_spec("dpo").token_count == "all"
    assert stage_spec("grpo").token_count == "no"
    assert stage_spec("sft").token_count == "auto"
