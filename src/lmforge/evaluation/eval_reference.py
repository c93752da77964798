"""The eval config reference for `lmforge eval --help`, rendered from the EvalConfig schema."""

from __future__ import annotations

from lmforge.config.config_reference import section_reference
from lmforge.evaluation.eval_config import ChoiceConfig, EvalDataConfig, EvalModelConfig
from lmforge.inference.sampling import GenerationOptions

SECTIONS = [
    ("model", EvalModelConfig),
    ("data  (perplexity, generate)", EvalDataConfig),
    ("generate  (the sampling settings chat, serve and rollouts share)", GenerationOptions),
    ("choice", ChoiceConfig),
]


def eval_reference() -> str:
    parts = [
        "Config keys (YAML; override any as key=value or section.key=value):",
        "task = 'perplexity'\n      perplexity | generate | choice.",
        "batch_size = 8\n      Examples per forward pass (results do not depend on it).",
        "output_dir = ''\n      Folder for eval_results.json (and predictions.jsonl); required.",
    ]
    parts += [section_reference(name, cls) for name, cls in SECTIONS]
    return "\n\n".join(parts)
