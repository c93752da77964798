"""SFT learns (QUALITY C5): a tiny model overfits 8 Q/A pairs; greedy generation from the saved output, prompted
exactly as training encoded it, reproduces every answer and stops. Trainable parameters changed, frozen ones not."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lmforge.train import run_training
from tests.integration.runs import QA_PAIRS, load, write_alpaca, write_config

pytestmark = pytest.mark.slow
METHODS = {
    "lora": ({"name": "lora", "lora_rank": 16}, {"max_steps": 150, "learning_rate": 1e-2}),
    "full": ({"name": "full"}, {"max_steps": 80, "learning_rate": 3e-3}),
}


def train(tmp_path: Path, model_dir: Path, method: dict, train_args: dict) -> Path:
    data = write_alpaca(tmp_path / "qa.json", QA_PAIRS)
    common = {"per_device_train_batch_size": 8, "lr_scheduler_type": "constant", "logging_steps": 10}
    config = write_config(tmp_path, model_dir, data, method=method, train={**common, **train_args})
    run_training(load(config), resume=False)
    return tmp_path / "out"


def load_trained(out: Path, base: Path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(out)
    if (out / "adapter_config.json").exists():
        from peft import PeftModel

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), out)
    else:
        model = AutoModelForCausalLM.from_pretrained(out)
    return model.eval(), tokenizer


def assert_answers_reproduced(model, tokenizer) -> None:
    from lmforge.templates import get_template

    template = get_template("chatml", tokenizer)
    stops = template.stop_token_ids(tokenizer)
    for question, answer in QA_PAIRS:
        messages = [{"role": "user", "content": question}, {"role": "assistant", "content": answer}]
        encoded = template.encode(tokenizer, messages)
        response = encoded.input_ids[slice(*encoded.replies[0])]
        expected = response[: min(i for i, t in enumerate(response) if t in stops) + 1]  # answer + end of turn
        prompt = torch.tensor([template.encode_prompt(tokenizer, messages[:1])])
        with torch.no_grad():
            output = model.generate(
                prompt,
                max_new_tokens=len(expected) + 1,
                do_sample=False,
                eos_token_id=stops,
                pad_token_id=tokenizer.pad_token_id,
            )
        generated = output[0, prompt.shape[1] :].tolist()
        assert generated == expected, f"{question!r}: {tokenizer.decode(generated)!r} != {answer!r}"


@pytest.mark.parametrize("method", sorted(METHODS))
def test_sft_overfits_and_generation_reproduces_answers(tmp_path, tiny_model_dir, method):
    out = train(tmp_path, tiny_model_dir, *METHODS[method])
    assert_answers_reproduced(*load_trained(out, tiny_model_dir))
    assert (out / "tokenizer_config.json").exists() and (out / "trainer_state.json").exists()


def test_freeze_trains_only_the_last_layer(tmp_path, tiny_model_dir):
    method = {"name": "freeze", "freeze_trainable_layers": 1}
    out = train(tmp_path, tiny_model_dir, method, {"max_steps": 3, "learning_rate": 1e-3})
    before, after = load_file(str(tiny_model_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    changed = {name for name in before if not torch.equal(before[name], after[name])}
    assert changed and all(name.startswith("model.layers.1.") for name in changed)
    trainable_matrices = {n for n in before if n.startswith("model.layers.1.") and n.endswith("proj.weight")}
    assert trainable_matrices <= changed
