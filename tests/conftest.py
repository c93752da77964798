"""Session fixtures shared by all tests: tiny tokenizer and model folders, built in-process and seeded."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.fixtures.models import save_tiny_model
from tests.fixtures.tokenizers import load_fixture_tokenizer

SEED = 0


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    """Each test starts from the same RNG state and fails on nondeterministic kernels (QUALITY 4.0, T1)."""
    torch.manual_seed(SEED)
    torch.use_deterministic_algorithms(True)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ChatML (Qwen-style) tokenizer folder: EOS <|im_end|>, pad <|endoftext|>, no BOS, chat_template set."""
    folder = tmp_path_factory.mktemp("tiny_tokenizer")
    load_fixture_tokenizer("qwen").save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny untied LlamaForCausalLM with the ChatML tokenizer, as a safetensors HF folder."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny_llama"), "llama", load_fixture_tokenizer("qwen"))


@pytest.fixture(scope="session")
def tiny_qwen2_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2ForCausalLM with tied embeddings and the ChatML tokenizer, as a safetensors HF folder."""
    return save_tiny_model(tmp_path_factory.mktemp("tiny_qwen2"), "qwen2", load_fixture_tokenizer("qwen"), tied=True)
