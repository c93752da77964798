"""LMFORGE_FAULT parsing (the crash-test hook)."""

from __future__ import annotations

import pytest

from lmforge.training.faults import FaultPlan, fault_plan_from_env, parse_fault_plan


def test_parse_all_directives():
    plan = parse_fault_plan("kill_after_step=17; kill_at_substep=18:2; kill_during_save=20:partial_model")
    assert plan == FaultPlan(kill_after_step=17, kill_at_substep=(18, 2), kill_during_save=(20, "partial_model"))


@pytest.mark.parametrize("spec", ["kill_now=1", "kill_during_save=20:halfway", "kill_at_substep=3"])
def test_bad_directive_is_rejected(spec):
    with pytest.raises(ValueError, match="LMFORGE_FAULT"):
        parse_fault_plan(spec)


def test_unset_means_no_plan(monkeypatch):
    monkeypatch.delenv("LMFORGE_FAULT", raising=False)
    assert fault_plan_from_env() is None
