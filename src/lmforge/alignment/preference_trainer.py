"""PreferenceTrainer: LmforgeTrainer (sealed, resumable checkpoints) whose loss is a preference objective.

Why a subclass: Trainer's compute_loss is the one hook for a loss that is not the model's own, and its
prediction_step expects logits/labels that a pairwise objective does not have. Metrics of every step are averaged
until the next log line (train) or over the whole evaluation (eval, logged with the eval_ prefix).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import torch

from lmforge.alignment.objectives import Objective
from lmforge.alignment.reference import REFERENCE_ADAPTER
from lmforge.training.sealed_trainer import LmforgeTrainer


class PreferenceTrainer(LmforgeTrainer):
    """A trainer that runs `objective(model, batch) -> (loss, metrics)` and logs the averaged metrics."""

    objective: Objective
    loss_is_likelihood = False

    def __init__(self, *args: Any, objective: Objective, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.objective = objective
        # the objective returns a batch mean: let Trainer divide by the accumulation steps itself
        self.model_accepts_loss_kwargs = False
        self._metric_values: dict[str, dict[str, list[float]]] = {
            "train": defaultdict(list),
            "eval": defaultdict(list),
        }

    def compute_loss(
        self, model: Any, inputs: dict[str, Any], return_outputs: bool = False, num_items_in_batch: Any = None
    ) -> Any:
        loss, metrics = self.objective(model, inputs)
        store = self._metric_values["train" if model.training else "eval"]
        for name, value in metrics.items():
            store[name].append(float(value.detach()))
        return (loss, {}) if return_outputs else loss

    def prediction_step(
        self, model: Any, inputs: dict[str, Any], prediction_loss_only: bool, ignore_keys: list[str] | None = None
    ) -> tuple[torch.Tensor, None, None]:
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the averaged stage metrics in place (so `evaluate()` returns them too), then log."""
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        store = self._metric_values[mode]
        prefix = "eval_" if mode == "eval" else ""
        for name, values in store.items():
            if values:
                logs[f"{prefix}{name}"] = sum(values) / len(values)
        store.clear()
        super().log(logs, start_time)

    def drop_training_only_parts(self) -> None:
        """The frozen SFT copy used as the reference is no part of the result: only the trained adapter is saved."""
        model: Any = self.model
        if REFERENCE_ADAPTER in getattr(model, "peft_config", {}):
            model.delete_adapter(REFERENCE_ADAPTER)
