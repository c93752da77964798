"""Evaluation metrics: perplexity from eval loss, and next-token accuracy on trained (label != -100) tokens.

Token accuracy must not keep every eval logit in memory ([tokens x vocab] floats), so logits are reduced to their
argmax on the fly by `preprocess_logits_for_metrics`, and `compute_metrics` only sees token ids.
"""

from __future__ import annotations

import math
from typing import Any

IGNORE_INDEX = -100


def argmax_logits(logits: Any, labels: Any) -> Any:
    """Trainer's `preprocess_logits_for_metrics`: keep the predicted token id only."""
    if isinstance(logits, tuple):  # some models return (logits, past_key_values, ...)
        logits = logits[0]
    if labels is not None and logits.shape[1] > labels.shape[1]:
        logits = logits[:, -labels.shape[1] :]  # prompt tuning / p-tuning: drop the virtual tokens' positions
    return logits.argmax(dim=-1)


def token_accuracy(eval_pred: Any) -> dict[str, float]:
    """Trainer's `compute_metrics`: prediction at position t is scored against the label at t + 1."""
    import numpy as np

    predictions, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(predictions, tuple):
        predictions = predictions[0]
    predictions = np.asarray(predictions)[..., :-1]
    labels = np.asarray(labels)[..., 1:]
    mask = labels != IGNORE_INDEX
    total = int(mask.sum())
    correct = int(((predictions == labels) & mask).sum())
    return {"token_accuracy": correct / total if total else float("nan")}


def add_perplexity(metrics: dict[str, float], prefix: str = "eval") -> dict[str, float]:
    """Add `<prefix>_perplexity = exp(<prefix>_loss)` (inf when the loss is too large to exponentiate)."""
    loss = metrics.get(f"{prefix}_loss")
    if loss is not None:
        try:
            metrics[f"{prefix}_perplexity"] = math.exp(loss)
        except OverflowError:
            metrics[f"{prefix}_perplexity"] = float("inf")
    return metrics
