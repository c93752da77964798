"""Reward model (QUALITY C15): loss = -logsig(r_c - r_r) by hand, swapping negates the margin, scores come from each
sample's last token of a padding-free row, and the saved folder (safetensors only) scores the same through
`load_reward_model`, plain transformers and plain peft."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForSequenceClassification, set_seed

from lmforge.alignment.batches import pack_samples
from lmforge.alignment.objectives import RewardObjective
from lmforge.config.schema import ModelConfig, PreferenceConfig
from lmforge.models.model_loading import load_tokenizer
from lmforge.models.reward import load_reward_backbone, load_reward_model, sequence_scores
from lmforge.templates import get_template
from lmforge.train import run_training
from tests.unit.alignment.helpers import load_run, pair_batch, rule_pairs, write_run


@pytest.fixture(scope="module")
def reward_setup(tiny_model_dir):
    tokenizer = load_tokenizer(ModelConfig(name_or_path=str(tiny_model_dir)))
    set_seed(0)
    model = load_reward_backbone(ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32"), tokenizer)
    return model.eval(), tokenizer, get_template("chatml", tokenizer)


def swap(pairs: list[dict]) -> list[dict]:
    return [{**p, "chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs]


def test_rm_loss_is_minus_logsigmoid_of_the_score_margin_and_swapping_negates_it(reward_setup):
    model, tokenizer, template = reward_setup
    pairs = rule_pairs(3, seed=0)
    batch = pair_batch(pairs, tokenizer, template)
    with torch.no_grad():
        scores = sequence_scores(model, batch).tolist()
        loss, metrics = RewardObjective(PreferenceConfig())(model, batch)
    by_hand = sum(math.log1p(math.exp(-(scores[k] - scores[k + 3]))) for k in range(3)) / 3
    assert loss.item() == pytest.approx(by_hand, abs=1e-6)
    with torch.no_grad():
        swapped = sequence_scores(model, pair_batch(swap(pairs), tokenizer, template)).tolist()
        _, swapped_metrics = RewardObjective(PreferenceConfig())(model, pair_batch(swap(pairs), tokenizer, template))
    assert swapped == pytest.approx(scores[3:] + scores[:3], abs=1e-6)
    assert swapped_metrics["rewards/margins"].item() == pytest.approx(-metrics["rewards/margins"].item(), abs=1e-6)


def test_padding_free_scores_equal_one_sequence_at_a_time(reward_setup):
    model, tokenizer, _ = reward_setup
    sequences = [[5, 6, 7, 8], [9, 10], [11, 12, 13, tokenizer.pad_token_id]]  # the last one ends in the pad id
    with torch.no_grad():
        packed = sequence_scores(model, pack_samples([(s, [-100] * len(s)) for s in sequences]))
        alone = [sequence_scores(model, pack_samples([(s, [-100] * len(s))]))[0] for s in sequences]
        # negative control: the same tokens as one sequence (positions not restarting) score differently
        joined = pack_samples([([t for s in sequences for t in s], [-100] * 10)])
        joined["last_positions"] = torch.tensor([3, 5, 9])
        mixed = sequence_scores(model, joined)
    assert packed.tolist() == pytest.approx([a.item() for a in alone], abs=1e-5)
    assert (mixed - packed).abs().max() > 1e-4


def plain_model(out: Path, base: Path):
    if (out / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(AutoModelForSequenceClassification.from_pretrained(base, num_labels=1), out)
    return AutoModelForSequenceClassification.from_pretrained(out)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_rm_folder_is_safetensors_only_and_scores_alike_in_lmforge_and_plain_transformers(
    tmp_path, tiny_model_dir, method
):
    config = write_run(tmp_path, tiny_model_dir, "rm", method, rule_pairs(8, seed=6), train={"max_steps": 2})
    run_training(load_run(config))
    out = tmp_path / "out"
    weights = {p.name for p in out.iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth", ".ckpt")}
    assert weights == {"adapter_model.safetensors" if method == "lora" else "model.safetensors"}  # no pickle (D1)
    reward = load_reward_model(str(out))
    prompt = reward.template.encode_prompt(reward.tokenizer, [{"role": "user", "content": "Item 1: describe it."}])
    sequences = [prompt + reward.tokenizer("sun gold<|im_end|>")["input_ids"], prompt[:-2]]
    scores = reward.score(sequences)
    plain = plain_model(out, tiny_model_dir).eval()
    with torch.no_grad():
        expected = [plain(input_ids=torch.tensor([s])).logits[0, 0].item() for s in sequences]
    assert scores.tolist() == pytest.approx(expected, abs=1e-5)
