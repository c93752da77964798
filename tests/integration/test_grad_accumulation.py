"""Loss is token-weighted across gradient accumulation (QUALITY C8, C9): 8x1, 4x2 and 1x8 micro-batching of the
same rows give the same per-step loss and weights, and the logged loss is the mean token NLL of the step.
Negative control: per-micro-batch mean normalisation (the classic GA bug) must visibly differ."""

from __future__ import annotations

import pytest
import torch

import lmforge.training.run as common
from lmforge.train import run_training
from lmforge.training.sealed_trainer import LmforgeTrainer
from tests.integration.runs import final_weights, load, max_weight_diff, step_log, write_alpaca, write_config

pytestmark = pytest.mark.slow
STEPS = 6
# Trained-token counts per row differ by ~30x, so how micro-batches are normalised matters.
ROWS = [(f"Item {i}?", "ok" if i % 2 else " ".join(["a"] * (10 + 6 * i))) for i in range(8)]


class PerMicroBatchMeanTrainer(LmforgeTrainer):
    """The bug the C8 test must catch: each micro-batch averages over its own tokens, then /GA."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model_accepts_loss_kwargs = False


@pytest.fixture(scope="module")
def config(tmp_path_factory, tiny_model_dir):
    folder = tmp_path_factory.mktemp("ga")
    data = write_alpaca(folder / "data.json", ROWS)
    return write_config(
        folder,
        tiny_model_dir,
        data,
        data={"cutoff_len": 256},
        method={"name": "full"},
        train={"max_steps": STEPS, "learning_rate": 3e-3, "lr_scheduler_type": "constant"},
    )


def train(config, tmp_path, batch: int, accumulation: int):
    out = tmp_path / f"{batch}x{accumulation}"
    cfg = load(
        config,
        f"train.output_dir={out}",
        f"train.per_device_train_batch_size={batch}",
        f"train.gradient_accumulation_steps={accumulation}",
    )
    run_training(cfg, resume=False)
    return [step_log(out)[s]["loss"] for s in range(1, STEPS + 1)], final_weights(out)


@pytest.fixture(scope="module")
def reference(config, tmp_path_factory):
    return train(config, tmp_path_factory.mktemp("ref"), 8, 1)


@pytest.mark.parametrize(("batch", "accumulation"), [(4, 2), (1, 8)])
def test_micro_batching_does_not_change_loss_or_weights(config, tmp_path, reference, batch, accumulation):
    losses, weights = train(config, tmp_path, batch, accumulation)
    assert losses == pytest.approx(reference[0], abs=1e-5)
    assert max_weight_diff(weights, reference[1]) <= 1e-5


def test_per_micro_batch_mean_is_caught(config, tmp_path, reference, monkeypatch):
    monkeypatch.setattr(common, "LmforgeTrainer", PerMicroBatchMeanTrainer)
    losses, weights = train(config, tmp_path, 1, 8)
    assert max(abs(a - b) for a, b in zip(losses, reference[0], strict=True)) > 1e-2
    assert max_weight_diff(weights, reference[1]) > 1e-3


def test_logged_loss_is_mean_token_nll_of_the_step(config, reference, tiny_model_dir, tiny_tokenizer_dir):
    """Step 1 covers all 8 rows with the initial weights: its loss is total NLL / trained tokens."""
    from lmforge.data.pipeline import build_datasets
    from lmforge.models.model_loading import load_model, load_tokenizer
    from lmforge.templates import get_template

    cfg = load(config)
    tokenizer = load_tokenizer(cfg.model)
    rows = build_datasets(cfg, tokenizer, get_template("chatml", tokenizer)).train
    model = load_model(cfg.model, tokenizer).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in rows:
            logits = model(input_ids=torch.tensor([row["input_ids"]])).logits[0, :-1]
            labels = torch.tensor(row["labels"][1:])
            keep = labels != -100
            total += torch.nn.functional.cross_entropy(logits[keep], labels[keep], reduction="sum").item()
            count += int(keep.sum())
    assert reference[0][0] == pytest.approx(total / count, abs=1e-5)
