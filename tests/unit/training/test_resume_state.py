"""Resume state without pickle (QUALITY D1): optimizer, scheduler and RNG state round-trip exactly through
safetensors + JSON, and checkpoints holding the Trainer's pickle files are refused without running them."""

from __future__ import annotations

import pickle
import random

import numpy as np
import pytest
import torch
from transformers import get_scheduler

from lmforge.training import resume_state
from lmforge.utils.errors import CheckpointError


def _trained_optimizer() -> tuple[torch.optim.Optimizer, object]:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, betas=(0.9, 0.95))
    scheduler = get_scheduler("cosine", optimizer, num_warmup_steps=2, num_training_steps=10)
    for _ in range(3):
        model(torch.randn(2, 4)).sum().backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
    return optimizer, scheduler


def _equal(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, np.ndarray):
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and np.array_equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b and type(a) is type(b)


def test_optimizer_and_scheduler_state_round_trip_exactly(tmp_path) -> None:
    optimizer, scheduler = _trained_optimizer()
    resume_state.save_state(tmp_path, "optimizer", optimizer.state_dict())
    resume_state.save_state(tmp_path, "scheduler", scheduler.state_dict())
    assert _equal(resume_state.load_state(tmp_path, "optimizer"), optimizer.state_dict())
    assert _equal(resume_state.load_state(tmp_path, "scheduler"), scheduler.state_dict())
    params = [p for group in optimizer.param_groups for p in group["params"]]
    fresh = torch.optim.AdamW(params, lr=1.0)  # negative control: a different state before loading
    assert not _equal(fresh.state_dict(), optimizer.state_dict())
    fresh.load_state_dict(resume_state.load_state(tmp_path, "optimizer"))
    assert _equal(fresh.state_dict(), optimizer.state_dict())
    assert not any(p.suffix in (".pt", ".pth", ".bin", ".pkl") for p in tmp_path.iterdir())


def test_rng_state_round_trips_and_replays_the_same_numbers(tmp_path) -> None:
    resume_state.save_state(tmp_path, "rng_state", resume_state.rng_state())
    expected = (random.random(), np.random.rand(), torch.rand(3))
    random.random(), np.random.rand(), torch.rand(3)  # move every generator on
    resume_state.set_rng_state(resume_state.load_state(tmp_path, "rng_state"))
    again = (random.random(), np.random.rand(), torch.rand(3))
    assert again[:2] == expected[:2] and torch.equal(again[2], expected[2])


def test_objects_that_would_need_pickle_are_refused(tmp_path) -> None:
    with pytest.raises(CheckpointError, match="without pickle"):
        resume_state.save_state(tmp_path, "x", {"f": object()})


class _Pwn:
    def __reduce__(self):
        return (exec, ("open(__import__('os').environ['LMFORGE_PWN_MARKER'], 'w').close()",))


def test_a_checkpoint_with_pickled_state_is_refused_without_loading_it(tmp_path, monkeypatch) -> None:
    marker = tmp_path / "pwned"
    monkeypatch.setenv("LMFORGE_PWN_MARKER", str(marker))
    (tmp_path / "optimizer.pt").write_bytes(pickle.dumps(_Pwn()))
    with pytest.raises(CheckpointError, match=r"optimizer\.pt.*does not load") as info:
        resume_state.refuse_pickled_state(tmp_path)
    assert "weights_only=False" not in str(info.value) and not marker.exists()
