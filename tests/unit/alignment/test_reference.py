"""The DPO reference model (QUALITY C14): equal to the policy at step 0 (loss ln 2, margins 0), frozen through
training (eval mode, adapters disabled), precomputed == online, and the SFT adapter when training starts from one."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import TrainerCallback

from lmforge.alignment import preference_setup as setup
from lmforge.alignment.batches import collate_pairs, sequence_logps
from lmforge.alignment.reference import precompute_reference_logps
from lmforge.train import run_training
from lmforge.training.arguments import build_training_arguments
from lmforge.training.callbacks import read_log
from tests.unit.alignment.helpers import kto_rows, load_run, rule_pairs, write_run


def first_step(output_dir) -> dict:
    return next(r for r in read_log(output_dir) if r.get("step") == 1 and "loss" in r)


@pytest.mark.parametrize(
    ("method", "pref", "lora_dropout"),
    [
        ("lora", {}, 0.1),  # adapter disabled; dropout must not make the policy differ at step 0
        ("full", {}, 0.0),  # explicit frozen copy
        ("freeze", {}, 0.0),
        ("full", {"precompute_ref_log_probs": True}, 0.0),
        ("lora", {"precompute_ref_log_probs": True}, 0.1),
    ],
)
def test_step0_loss_is_ln2_and_margins_zero_when_reference_equals_policy(
    tmp_path, tiny_model_dir, method, pref, lora_dropout
):
    config = write_run(
        tmp_path, tiny_model_dir, "dpo", method, rule_pairs(8, seed=1),
        method={"lora_dropout": lora_dropout}, pref=pref, train={"max_steps": 1},
    )  # fmt: skip
    run_training(load_run(config))
    log = first_step(tmp_path / "out")
    assert log["loss"] == pytest.approx(math.log(2), abs=1e-6)
    assert log["rewards/margins"] == 0.0 and log["rewards/chosen"] == 0.0


class RecordLogps(TrainerCallback):
    """Reference and policy log-probs of one fixed batch at chosen steps."""

    def __init__(self, objective, model, batch, steps) -> None:
        self.objective, self.model, self.batch, self.steps = objective, model, batch, steps
        self.reference: dict[int, torch.Tensor] = {}
        self.policy: dict[int, torch.Tensor] = {}

    def _record(self, step: int) -> None:
        if step in self.steps:
            self.reference[step] = self.objective.reference.logps(self.batch)[0]
            with torch.no_grad():
                self.policy[step] = sequence_logps(self.model, self.batch)[0]

    def on_train_begin(self, args, state, control, **kwargs):
        self._record(0)

    def on_step_end(self, args, state, control, **kwargs):
        self._record(state.global_step)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_reference_logps_of_a_fixed_batch_never_move(tmp_path, tiny_model_dir, method):
    config = write_run(
        tmp_path, tiny_model_dir, "dpo", method, rule_pairs(16, seed=2),
        method={"lora_dropout": 0.1}, train={"max_steps": 20, "learning_rate": 5e-3},
    )  # fmt: skip
    cfg = load_run(config)
    tokenizer, _, data = setup.load_preference_data(cfg)
    model, reference = setup.load_policy(cfg, tokenizer, needs_reference=True)
    objective = setup.make_objective(cfg, reference)
    args = build_training_arguments(cfg)
    trainer = setup.build_preference_trainer(cfg, args, model, tokenizer, data, objective)
    recorder = RecordLogps(objective, model, collate_pairs(data.train.select(range(4)).to_list()), {0, 10, 20})
    trainer.add_callback(recorder)
    trainer.train()
    assert torch.equal(recorder.reference[0], recorder.reference[10])
    assert torch.equal(recorder.reference[0], recorder.reference[20])
    # negative control: the policy itself did move
    assert (recorder.policy[20] - recorder.policy[0]).abs().max() > 1e-2
    assert model.training  # the reference forward restored train mode


def test_precomputed_reference_logps_equal_online_ones(tmp_path, tiny_model_dir):
    config = write_run(tmp_path, tiny_model_dir, "dpo", "full", rule_pairs(12, seed=3))
    cfg = load_run(config)
    tokenizer, _, data = setup.load_preference_data(cfg)
    model, reference = setup.load_policy(cfg, tokenizer, needs_reference=True)
    stored = precompute_reference_logps(data.train, reference, collate_pairs, 4, ("c", "r"))
    rows = data.train.to_list()
    for k in (0, 5, 11):  # online, each pair alone: another batch composition than the precomputed one
        online, _ = reference.logps(collate_pairs([rows[k]]))
        assert online[0].item() == pytest.approx(stored[k]["c"], abs=1e-6)
        assert online[1].item() == pytest.approx(stored[k]["r"], abs=1e-6)
    with torch.no_grad():  # negative control: a changed model gives other values
        model.get_output_embeddings().weight.mul_(1.5)
        moved, _ = sequence_logps(model, collate_pairs([rows[0]]))
    assert abs(moved[0].item() - stored[0]["c"]) > 1e-3


def test_starting_from_an_sft_adapter_makes_that_adapter_the_reference(tmp_path, tiny_model_dir):
    sft_pairs = [(p["prompt"][0]["content"], p["chosen"][0]["content"]) for p in rule_pairs(8, seed=4)]
    sft_rows = [{"instruction": q, "input": "", "output": a} for q, a in sft_pairs]
    sft_config = write_run(
        tmp_path / "sft", tiny_model_dir, "sft", "lora", sft_rows,
        data={"datasets": [{"path": str(tmp_path / "sft" / "data.json"), "format": "alpaca"}]},
        train={"max_steps": 4, "learning_rate": 1e-2},
    )  # fmt: skip
    run_training(load_run(sft_config))
    adapter = tmp_path / "sft" / "out"

    config = write_run(
        tmp_path / "dpo", tiny_model_dir, "dpo", "lora", rule_pairs(8, seed=5),
        model={"adapter_name_or_path": str(adapter)}, train={"max_steps": 1},
    )  # fmt: skip
    cfg = load_run(config)
    tokenizer, _, data = setup.load_preference_data(cfg)
    model, reference = setup.load_policy(cfg, tokenizer, needs_reference=True)
    batch = collate_pairs(data.train.select(range(4)).to_list())
    ref = reference.logps(batch)[0]
    model.eval()
    with torch.no_grad():
        policy = sequence_logps(model, batch)[0]
        with model.disable_adapter():
            base = sequence_logps(model, batch)[0]
    assert (policy - ref).abs().max() < 1e-5  # step-0 KL ~ 0: the reference is the SFT model
    assert (base - ref).abs().max() > 1e-3  # negative control: the base model is not

    run_training(cfg)
    assert first_step(tmp_path / "dpo" / "out")["loss"] == pytest.approx(math.log(2), abs=1e-5)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "dpo" / "out" / "adapter_model.safetensors"), "pt") as weights:
        assert not any("reference" in key for key in weights.keys())  # noqa: SIM118


@pytest.mark.parametrize("stage", ["dpo", "kto"])
def test_precomputed_and_online_references_train_the_same_run(tmp_path, tiny_model_dir, stage):
    pairs = rule_pairs(12, seed=8)
    rows = kto_rows(pairs) if stage == "kto" else pairs
    losses = {}
    for precompute in (False, True):
        folder = tmp_path / str(precompute)
        config = write_run(folder, tiny_model_dir, stage, "full", rows,
                           pref={"precompute_ref_log_probs": precompute}, train={"max_steps": 3})  # fmt: skip
        run_training(load_run(config))
        losses[precompute] = [r["loss"] for r in read_log(folder / "out") if "loss" in r]
    assert losses[True] == pytest.approx(losses[False], abs=1e-6) and len(losses[True]) == 3
