"""Preference-test helpers: a synthetic rule-following preference task, run configs, and held-out margins."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import torch

from lmforge.alignment.batches import collate_pairs, sequence_logps
from lmforge.config import RunConfig, load_config
from lmforge.config.schema import DataConfig
from lmforge.data.pairwise import encode_pairs
from tests.fixtures.run_configs import write_run_yaml

# The rule: preferred answers use only GOOD words, rejected ones only BAD words.
GOOD = ["sun", "gold", "warm", "bright", "kind"]
BAD = ["mud", "cold", "grey", "dull", "rude"]


def rule_pairs(n: int, seed: int, start: int = 0) -> list[dict[str, Any]]:
    """openai-form pairs: a numbered prompt, a chosen answer of GOOD words, a rejected one of BAD words."""
    rng = random.Random(seed)
    pairs = []
    for i in range(start, start + n):
        length = rng.randint(2, 5)
        pairs.append(
            {
                "prompt": [{"role": "user", "content": f"Item {i}: describe it."}],
                "chosen": [{"role": "assistant", "content": " ".join(rng.choice(GOOD) for _ in range(length))}],
                "rejected": [{"role": "assistant", "content": " ".join(rng.choice(BAD) for _ in range(length))}],
            }
        )
    return pairs


def kto_rows(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Unpaired KTO examples from pairs: even rows keep the chosen answer (desirable), odd the rejected."""
    return [
        {"messages": p["prompt"] + (p["chosen"] if i % 2 == 0 else p["rejected"]), "label": i % 2 == 0}
        for i, p in enumerate(pairs)
    ]


def write_run(
    folder: Path, model_dir: Path, stage: str, method_name: str, rows: list[dict], **sections: dict[str, Any]
) -> Path:
    """A run YAML (output in folder/out) over `rows` as JSON; `sections` update model/data/method/pref/train."""
    folder.mkdir(parents=True, exist_ok=True)
    data_file = folder / "data.json"
    data_file.write_text(json.dumps(rows), encoding="utf-8")
    dataset = {"path": str(data_file), "format": "kto" if stage == "kto" else "preference"}
    method = {"name": method_name, "lora_rank": 4}
    return write_run_yaml(folder, model_dir, stage, dataset, cutoff_len=64, default_method=method, **sections)


def load_run(path: Path, *overrides: str) -> RunConfig:
    return load_config(path, list(overrides))


def pair_batch(pairs: list[dict[str, Any]], tokenizer: Any, template: Any) -> dict[str, torch.Tensor]:
    return collate_pairs(encode_pairs(pairs, template, tokenizer, DataConfig(cutoff_len=128)))


@torch.no_grad()
def logp_margin(model: Any, batch: dict[str, torch.Tensor]) -> float:
    """Mean over pairs of log p(chosen) - log p(rejected) under `model` (eval mode)."""
    model.eval()
    sums, _ = sequence_logps(model, batch)
    n = sums.shape[0] // 2
    return float((sums[:n] - sums[n:]).mean())


def load_trained_policy(output_dir: Path, base_dir: Path) -> Any:
    """The final policy of a run: the full model folder, or the base model with the saved adapter."""
    from transformers import AutoModelForCausalLM

    if (output_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        return PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), str(output_dir))
    return AutoModelForCausalLM.from_pretrained(output_dir)
