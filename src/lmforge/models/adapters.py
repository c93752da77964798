"""Load a trained model for use (export, chat): a plain base model plus an optional PEFT adapter.

Unlike `load_model` (which prepares a model for training), this keeps the saved config untouched: stock attention,
KV cache on, and embeddings resized only to the shapes the adapter itself saved. Pickle weights are refused unless
the caller opted in, and even then load with `weights_only=True` on a torch that enforces it (QUALITY D1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from lmforge.config.schema import ModelConfig
from lmforge.models.model_loading import (
    PICKLE_SUFFIXES,
    check_remote_code,
    check_safetensors_only,
    from_pretrained_checked,
)
from lmforge.utils.errors import CheckpointError, ConfigError
from lmforge.utils.logging import get_logger

logger = get_logger(__name__)

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_SAFETENSORS = "adapter_model.safetensors"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
MIN_SAFE_TORCH = (2, 6)  # CVE-2025-32434: weights_only=True is bypassable before 2.6
UNSAFE_FLAG = "--allow-unsafe-pickle"


def require_safe_torch_load() -> None:
    """Opting in to pickle files still needs a torch whose `weights_only=True` loader is not bypassable."""
    version = tuple(int(p) for p in torch.__version__.split("+")[0].split(".")[:2])
    if version < MIN_SAFE_TORCH:
        raise ConfigError(
            f"{UNSAFE_FLAG} needs torch >= 2.6 (CVE-2025-32434; >= 2.10 recommended), found {torch.__version__}"
        )


def check_weights_files(folder: Path, allow_unsafe_pickle: bool) -> None:
    """Refuse a folder whose weights are pickle files, naming them, unless the user opted in."""
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if not pickles:
        raise ConfigError(f"{str(folder)!r} has no *.safetensors weights")
    if not allow_unsafe_pickle:
        raise ConfigError(
            f"{str(folder)!r} has only pickle weights ({', '.join(str(folder / p) for p in pickles)}), which can run "
            f"code when loaded; lmforge loads safetensors only. Convert them in a trusted environment, or pass "
            f"{UNSAFE_FLAG} if you trust these files (loaded with weights_only=True)"
        )
    require_safe_torch_load()
    logger.warning("%s: loading pickle weights %s with weights_only=True", UNSAFE_FLAG, ", ".join(pickles))


def load_base_model(
    path: str, dtype: torch.dtype, allow_unsafe_pickle: bool = False, trust_remote_code: bool = False
) -> Any:
    """The causal LM as saved (stock attention, KV cache on), in `dtype`, in eval mode."""
    from transformers import AutoModelForCausalLM

    model_cfg = ModelConfig(name_or_path=path, trust_remote_code=trust_remote_code)
    check_remote_code(model_cfg)
    folder = Path(path).expanduser()
    if folder.is_dir():
        check_weights_files(folder, allow_unsafe_pickle)
    else:
        check_safetensors_only(path)  # hub id: use_safetensors=True restricts the download
    use_safetensors = None if allow_unsafe_pickle else True
    model = from_pretrained_checked(
        AutoModelForCausalLM.from_pretrained, model_cfg, "model", dtype=dtype, use_safetensors=use_safetensors
    )
    model.config.use_cache = True
    return model.eval()


def load_plain_tokenizer(path: str, trust_remote_code: bool = False) -> Any:
    """The tokenizer exactly as saved (no padding-side or pad changes), refusing custom code unless trusted."""
    from transformers import AutoTokenizer

    model_cfg = ModelConfig(name_or_path=path, trust_remote_code=trust_remote_code)
    check_remote_code(model_cfg)
    return from_pretrained_checked(AutoTokenizer.from_pretrained, model_cfg, "tokenizer")


def tokenizer_source(model_path: str, adapter_path: str | None) -> str:
    """The adapter folder when it carries a tokenizer (training saves it there, with added tokens), else the base."""
    if adapter_path and any((Path(adapter_path) / name).is_file() for name in TOKENIZER_FILES):
        return adapter_path
    return model_path


def saved_embedding_rows(adapter_dir: Path) -> int | None:
    """Rows of the (resized) embedding matrices the adapter saved in full, or None when it saved none."""
    from safetensors import safe_open

    weights = adapter_dir / ADAPTER_SAFETENSORS
    if not weights.is_file():
        return None
    rows: set[int] = set()
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():  # noqa: SIM118 (safe_open is no dict)
            if key.endswith(("embed_tokens.weight", "lm_head.weight", "wte.weight", "embed_out.weight")):
                rows.add(f.get_slice(key).get_shape()[0])
    if len(rows) > 1:
        raise CheckpointError(f"{weights}: saved embedding matrices disagree on the vocabulary size ({sorted(rows)})")
    return rows.pop() if rows else None


def check_adapter_dir(adapter_path: str, allow_unsafe_pickle: bool) -> Path:
    """A PEFT adapter folder with safetensors weights (or, opted in, pickle ones)."""
    folder = Path(adapter_path).expanduser()
    if not (folder / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"adapter {str(folder)!r} is no PEFT adapter folder (no {ADAPTER_CONFIG})")
    if (folder / ADAPTER_SAFETENSORS).is_file():
        return folder
    found = sorted(p.name for p in folder.iterdir() if p.name.startswith("adapter_model"))
    if not found:
        raise ConfigError(f"adapter {str(folder)!r} has no {ADAPTER_SAFETENSORS}")
    if not allow_unsafe_pickle:
        raise ConfigError(
            f"adapter {str(folder)!r} has only pickle weights ({', '.join(str(folder / n) for n in found)}), which "
            f"can run code when loaded; refused. Pass {UNSAFE_FLAG} if you trust them (loaded with weights_only=True)"
        )
    require_safe_torch_load()  # peft loads adapter_model.bin with torch.load(weights_only=True)
    return folder


def attach_adapter(model: Any, adapter_path: str, allow_unsafe_pickle: bool = False) -> Any:
    """A PeftModel around `model`, after growing its embeddings to the adapter's saved (resized) shape."""
    from peft import PeftModel

    folder = check_adapter_dir(adapter_path, allow_unsafe_pickle)
    rows = saved_embedding_rows(folder)
    current = model.get_input_embeddings().weight.shape[0]
    if rows is not None and rows != current:
        logger.info("adapter was trained with %d embedding rows (base has %d): resizing the base", rows, current)
        model.resize_token_embeddings(rows, mean_resizing=False)  # the adapter's saved rows overwrite them
    base_name = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    logger.info("loading adapter %s (trained on %s)", folder, base_name)
    return PeftModel.from_pretrained(model, str(folder)).eval()


def check_vocab_covers(model: Any, tokenizer: Any) -> None:
    """Every tokenizer id needs an embedding row; a gap means the adapter lost its resized embeddings."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise CheckpointError(
            f"the tokenizer has {len(tokenizer)} tokens but the model only {rows} embedding rows: the adapter was "
            "trained with added tokens but saved no resized embeddings (embed_tokens/lm_head)"
        )
