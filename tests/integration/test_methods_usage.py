"""Trained adapters of the non-LoRA methods in use: prompt-style adapters generating through the chat engine (KV
cache), QLoRA exports onto dequant(W4) vs W (QUALITY C11), AdaLoRA's rank allocation, GaLore as an optimizer."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.export.merge import export_merged
from lmforge.export.verify import fixed_inputs, logits_of
from lmforge.inference.engine import GenerationOptions, load_engine
from lmforge.models.adapters import attach_adapter, load_base_model
from lmforge.models.model_loading import load_model, load_tokenizer
from tests.unit.methods.runs import train_method

GREEDY = GenerationOptions(max_new_tokens=6, temperature=0)
PROMPTS = {
    "prompt_tuning": ({"name": "prompt_tuning", "prompt_virtual_tokens": 4, "prompt_init_text": "Be brief."}, 1.0),
    "p_tuning": ({"name": "p_tuning", "prompt_virtual_tokens": 4, "prompt_encoder": "lstm"}, 3e-2),
    "prefix_tuning": ({"name": "prefix_tuning", "prompt_virtual_tokens": 4, "prefix_projection": True}, 5e-2),
}


@torch.no_grad()
def greedy_without_cache(model, prompt: list[int], steps: int) -> list[int]:
    """Reference decoding: the whole sequence re-run every step, no KV cache."""
    ids = list(prompt)
    for _ in range(steps):
        tensor = torch.tensor([ids])
        out = model(input_ids=tensor, attention_mask=torch.ones_like(tensor), use_cache=False).logits
        ids.append(int(out[0, -1].argmax()))
    return ids[len(prompt) :]


def _until_stop(engine, ids: list[int]) -> list[int]:
    return next((ids[:i] for i, t in enumerate(ids) if t in engine.stop_ids), ids)


@pytest.mark.parametrize("name", list(PROMPTS))
def test_prompt_adapters_generate_through_the_chat_engine(name: str, tmp_path: Path, tiny_model_dir: Path) -> None:
    method, lr = PROMPTS[name]
    run = train_method(tmp_path, tiny_model_dir, method, lr, steps=6)
    engine = load_engine(str(tiny_model_dir), adapter=str(run.output_dir), template="chatml", dtype="float32")
    prompt = engine.prompt_ids([{"role": "user", "content": "What do bees make?"}])
    reply = engine.generate_ids([prompt], GREEDY)[0]
    expected = _until_stop(engine, greedy_without_cache(engine.model, prompt, GREEDY.max_new_tokens))
    assert reply == expected  # cached decoding with the virtual tokens = full recomputation
    with engine.model.disable_adapter():  # negative control: without the virtual tokens the model says otherwise
        plain = _until_stop(engine, greedy_without_cache(engine.model, prompt, GREEDY.max_new_tokens))
    assert plain != expected
    batch = engine.generate_ids([prompt, prompt[:-3] + prompt[-3:]], GREEDY)  # left-padded batch of two
    assert batch[0] == reply


def test_qlora_export_merges_onto_dequantized_weights(tmp_path: Path, tiny_model_dir: Path) -> None:
    run = train_method(tmp_path / "run", tiny_model_dir, {"name": "qlora", "lora_rank": 4}, 5e-2, steps=10)
    cfg = ModelConfig(name_or_path=str(tiny_model_dir), dtype="float32")
    quantized = attach_adapter(load_model(cfg, load_tokenizer(cfg), MethodConfig(name="qlora")), str(run.output_dir))
    inputs = fixed_inputs(480)
    reference = logits_of(quantized.eval(), inputs)  # the 4-bit model the adapter was trained in
    diffs = {}
    for choice in ("dequantized", "original"):
        out = tmp_path / choice
        meta = export_merged(str(tiny_model_dir), str(run.output_dir), str(out), qlora_base=choice)
        saved = json.loads((out / "lmforge_export.json").read_text())
        assert saved["merge_base"] == meta["merge_base"]
        diffs[choice] = (logits_of(load_base_model(str(out), torch.float32), inputs) - reference).abs().max().item()
    assert json.loads((tmp_path / "dequantized" / "lmforge_export.json").read_text())["merge_base"] == (
        "dequantized nf4 double-quant"
    )
    # Onto W the adapter's correction misses the quantisation error; onto dequant(W4) the export is exact.
    assert diffs["dequantized"] <= 1e-4
    assert diffs["original"] > 10 * diffs["dequantized"]  # no worse than W16: far better (unsloth-zoo#810)
    # chat/serve/eval load the adapter onto the same dequantised base, so they run the model that was trained
    engine = load_engine(str(tiny_model_dir), adapter=str(run.output_dir), template="chatml", dtype="float32")
    assert (logits_of(engine.model, inputs) - reference).abs().max().item() <= 1e-4


def test_adalora_allocates_ranks_during_training(tmp_path: Path, tiny_model_dir: Path) -> None:
    method = {"name": "adalora", "lora_rank": 6, "adalora_target_rank": 2}
    run = train_method(tmp_path, tiny_model_dir, method, 5e-2, steps=10)
    config = run.model.peft_config["default"]
    assert (config.total_step, config.tinit, config.tfinal) == (10, 1, 2)
    ranks = [sum(mask) for mask in config.rank_pattern.values()]
    assert len(ranks) == 14 and sum(ranks) == 2 * 14  # the budget: target rank on average over the 14 layers
    assert len(set(ranks)) > 1  # allocated by importance, not uniformly
    saved = json.loads((run.output_dir / "adapter_config.json").read_text())
    assert saved["peft_type"] == "ADALORA" and saved["rank_pattern"]


def test_galore_optimizer_trains(tmp_path: Path, tiny_model_dir: Path) -> None:
    from lmforge.train import run_training
    from tests.integration.runs import QA_PAIRS, load, step_log, write_alpaca, write_config

    data = write_alpaca(tmp_path / "qa.json", QA_PAIRS)
    train = {"max_steps": 8, "optim": "galore_adamw", "optim_target_modules": ["mlp", "self_attn"]}
    config = write_config(tmp_path, tiny_model_dir, data, method={"name": "full"}, train=train)
    run_training(load(config, "train.optim_args=rank=4"))
    losses = [r["loss"] for r in step_log(tmp_path / "out").values()]
    assert len(losses) == 8 and sum(losses[-2:]) < sum(losses[:2]) - 0.5


@pytest.mark.parametrize(
    "method",
    [
        {"name": "qlora", "lora_rank": 4},
        {"name": "ia3"},
        {"name": "prefix_tuning", "prompt_virtual_tokens": 4},
    ],
    ids=lambda m: m["name"],
)
def test_pt_stage_trains_with_the_method(method: dict, tmp_path: Path, tiny_model_dir: Path) -> None:
    """Continued pretraining on text blocks (prompt methods on padded blocks) with eval, saving an adapter."""
    from lmforge.train import run_training
    from tests.integration.runs import REPO, load, step_log, write_config

    torch.use_deterministic_algorithms(False)  # bitsandbytes' CPU kernels
    padded = {"padding_free": False} if method["name"] == "prefix_tuning" else {}
    config = write_config(
        tmp_path,
        tiny_model_dir,
        REPO / "examples/data/wiki_demo.txt",
        stage="pt",
        data={"cutoff_len": 32, "max_samples": 4, "val_size": 2, **padded},
        method=method,
        train={"max_steps": 4, "learning_rate": 5e-2, "per_device_eval_batch_size": 2},
    )
    metrics = run_training(load(config))
    assert math.isfinite(metrics["eval_loss"]) and len(step_log(tmp_path / "out")) == 4
    assert (tmp_path / "out" / "adapter_model.safetensors").is_file()
