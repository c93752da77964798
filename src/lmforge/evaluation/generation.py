"""`generate`: answer each dataset prompt with the model, write predictions.jsonl, score BLEU-4 / ROUGE.

Prompts come only from the template's `encode_prompt` (the ids chat and training use, QUALITY C3/C17) and are decoded
by the one engine (`ChatEngine.generate_ids`), greedily by default, so the predictions do not depend on the batch
size (C16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lmforge.evaluation.data import EvalSource, require_rows
from lmforge.evaluation.metrics import average_scores
from lmforge.inference.engine import ChatEngine, GenerationOptions

SKIP_NO_REPLY = "last message is not an assistant reply (nothing to compare with)"
SKIP_LONG_PROMPT = "prompt longer than data.cutoff_len"


@dataclass(frozen=True)
class Example:
    prompt_ids: list[int]
    label: str


def build_examples(source: EvalSource, engine: ChatEngine, cutoff_len: int) -> list[Example]:
    """(prompt ids, reference reply) per conversation: the last assistant message is the reference."""
    examples = []
    for conv in source.rows:
        messages = conv["messages"]
        if messages[-1]["role"] != "assistant" or messages[-1].get("tool_calls"):
            source.counts.drop(SKIP_NO_REPLY)
            continue
        ids = engine.template.encode_prompt(engine.tokenizer, messages[:-1], conv.get("tools"))
        if len(ids) > cutoff_len:
            source.counts.drop(SKIP_LONG_PROMPT)
            continue
        examples.append(Example(ids, messages[-1]["content"]))
    source.counts.kept = len(examples)
    require_rows(source)
    return examples


def predict(
    engine: ChatEngine, examples: list[Example], options: GenerationOptions, batch_size: int, progress: Any = None
) -> list[str]:
    """One decoded reply per example, in order; batches hold prompts of similar length (less padding)."""
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].prompt_ids))
    replies: list[str] = [""] * len(examples)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        outputs = engine.generate_ids([examples[i].prompt_ids for i in indices], options)
        for i, ids in zip(indices, outputs, strict=True):
            replies[i] = engine.tokenizer.decode(ids, skip_special_tokens=True)
        if progress is not None:
            progress.update(len(indices))
    return replies


def write_predictions(path: Path, engine: ChatEngine, examples: list[Example], replies: list[str]) -> None:
    """predictions.jsonl: the prompt as the model saw it (special tokens kept), the reference and the reply."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for example, reply in zip(examples, replies, strict=True):
            prompt = engine.tokenizer.decode(example.prompt_ids, skip_special_tokens=False)
            fh.write(json.dumps({"prompt": prompt, "label": example.label, "prediction": reply}, ensure_ascii=False))
            fh.write("\n")


def score(examples: list[Example], replies: list[str]) -> dict[str, float]:
    return average_scores(replies, [e.label for e in examples])
