"""Integration runs use one intra-op thread: tiny models gain nothing from more, and on a shared 2-core machine
oversubscribed OpenMP threads make steps an order of magnitude slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
