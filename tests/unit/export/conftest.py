"""Adapters shared by the export tests (built once per session)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.adapters import NEW_TOKENS, save_lora_adapter


@pytest.fixture(scope="session")
def lora_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter"))


@pytest.fixture(scope="session")
def resized_adapter_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_lora_adapter(tiny_model_dir, tmp_path_factory.mktemp("adapter_resized"), new_tokens=NEW_TOKENS)
