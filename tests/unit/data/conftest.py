"""Data-test fixtures (built in-process; see helpers.py)."""

from __future__ import annotations

from typing import Any

import pytest

from .helpers import FakeChatML, build_char_tokenizer


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    return build_char_tokenizer()


@pytest.fixture(scope="session")
def template() -> FakeChatML:
    return FakeChatML()
