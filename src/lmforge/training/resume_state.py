"""Optimizer, scheduler, scaler and RNG state in checkpoints as safetensors + JSON, never pickle (QUALITY D1).

The Trainer writes `optimizer.pt`, `scheduler.pt`, `scaler.pt` and `rng_state.pth` with `torch.save`, i.e. pickle:
loading someone else's checkpoint could run code, and when `weights_only` refuses one, torch's own error advises
`weights_only=False`. lmforge writes the same state as tensors (safetensors) plus a JSON tree that refers to them,
and reads nothing else. DeepSpeed and FSDP keep their own checkpoint formats (their engines load them).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from lmforge.utils.errors import CheckpointError

OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
SCALER = "scaler"
RNG = "rng_state"
PICKLED_STATE = ("optimizer.pt", "optimizer.bin", "scheduler.pt", "scaler.pt", "rng_state.pth", "rng_state_0.pth")


def flatten(value: Any, tensors: dict[str, torch.Tensor], path: str = "t") -> Any:
    """A JSON-able tree of `value` whose tensors are replaced by {"__tensor__": key} and stored in `tensors`."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, dict):
        return {
            "__dict__": [
                [flatten(k, tensors, f"{path}.k{i}"), flatten(v, tensors, f"{path}.{i}")]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    if isinstance(value, (list, tuple)):
        items = [flatten(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
        return {"__tuple__": items} if isinstance(value, tuple) else items
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    raise CheckpointError(f"cannot store a {type(value).__name__} in a checkpoint without pickle (at {path})")


def unflatten(value: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [unflatten(v, tensors) for v in value]
    if not isinstance(value, dict):
        return value
    if "__tensor__" in value:
        return tensors[value["__tensor__"]]
    if "__ndarray__" in value:
        return np.array(value["__ndarray__"], dtype=value["dtype"])
    if "__tuple__" in value:
        return tuple(unflatten(v, tensors) for v in value["__tuple__"])
    return {unflatten(k, tensors): unflatten(v, tensors) for k, v in value["__dict__"]}


def save_state(folder: str | Path, name: str, state: Any) -> None:
    """`name`.json (+ `name`.safetensors when the state holds tensors)."""
    tensors: dict[str, torch.Tensor] = {}
    tree = flatten(state, tensors)
    folder = Path(folder)
    if tensors:
        save_file(tensors, str(folder / f"{name}.safetensors"))
    (folder / f"{name}.json").write_text(json.dumps(tree), encoding="utf-8")


def load_state(folder: str | Path, name: str, device: str | torch.device = "cpu") -> Any | None:
    """The state `save_state` wrote, or None when the checkpoint has none under that name."""
    folder = Path(folder)
    if not (folder / f"{name}.json").is_file():
        return None
    weights = folder / f"{name}.safetensors"
    tensors = load_file(str(weights), device=str(device)) if weights.is_file() else {}
    return unflatten(json.loads((folder / f"{name}.json").read_text(encoding="utf-8")), tensors)


def refuse_pickled_state(checkpoint: str | Path) -> None:
    """A checkpoint with the Trainer's pickle files but none of ours (an older lmforge, or plain transformers)."""
    found = [name for name in PICKLED_STATE if (Path(checkpoint) / name).is_file()]
    if found and not (Path(checkpoint) / f"{OPTIMIZER}.json").is_file():
        raise CheckpointError(
            f"{checkpoint} holds its optimizer/RNG state as pickle files ({', '.join(found)}), which lmforge does not "
            "load (they could run code). Start a new run from the checkpoint's weights instead (e.g. "
            "model.name_or_path or model.adapter_name_or_path pointing at it)"
        )


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "cpu": torch.random.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.random.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.random.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.random.set_rng_state_all(state["cuda"])
