"""`lmforge export`: base + PEFT adapter -> one verified, standalone safetensors model folder.

The merge runs in fp32 and is checked against the unmerged model before anything is cast or written. Files go to
a hidden staging folder next to the destination, are reloaded and checked once more, and only then renamed into
place, so a crash never leaves a half-written destination and a rerun starts clean (QUALITY B15, C10, D16).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmforge.export.bases import QloraBase, check_mergeable, describe
from lmforge.export.verify import (
    ExportError,
    check_merge,
    check_written,
    check_written_logits,
    fixed_inputs,
    logits_of,
)
from lmforge.models.adapters import (
    attach_adapter,
    check_vocab_covers,
    load_base_model,
    load_plain_tokenizer,
    tokenizer_source,
)
from lmforge.models.model_loading import PICKLE_SUFFIXES, resolve_dtype
from lmforge.models.quantization import quantized_training, use_dequantized_base
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger
from lmforge.utils.paths import ensure_writable_dir, overlaps

logger = get_logger(__name__)

METADATA = "lmforge_export.json"


def export_merged(
    base: str,
    adapter: str,
    output: str,
    dtype: str = "float32",
    shard_size: str = "2GB",
    overwrite: bool = False,
    allow_unsafe_pickle: bool = False,
    qlora_base: QloraBase = "dequantized",
    trust_remote_code: bool = False,
) -> dict[str, Any]:
    """Merge `adapter` into `base`, verify, and publish at `output`; returns the metadata written there.

    qlora_base: for a qlora adapter, merge onto the dequantised weights it was trained against (default) or onto
    the original weights; `merge_base` in the metadata records which."""
    out = Path(output).expanduser()
    check_destination(out, overwrite, {"--model": base, "--adapter": adapter})
    ensure_writable_dir(out.parent, "export destination folder")
    merged = merge_adapter(base, adapter, allow_unsafe_pickle, qlora_base, trust_remote_code)
    model = merged.model.to(resolve_dtype(dtype))
    set_generation_stops(model, merged.tokenizer)
    numbers = merged.verification
    metadata = {
        "base": base,
        "adapter": adapter,
        "dtype": dtype,
        "merge_base": merged.merge_base,
        "verification": numbers,
    }
    staging = staging_dir(out, "tmp")
    shutil.rmtree(staging, ignore_errors=True)  # leftovers of a killed export
    try:
        write_model(model, merged.tokenizer, staging, shard_size)
        reloaded = load_base_model(str(staging), model.dtype, trust_remote_code=trust_remote_code)
        check_written(reloaded, model)
        numbers["written_vs_unmerged"] = check_written_logits(
            logits_of(reloaded, merged.inputs), merged.unmerged, model.dtype
        )
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s + %s to %s (%s): %s", base, adapter, out, dtype, numbers)
    return metadata


@dataclass
class MergedModel:
    """An adapter merged into its base in fp32 and checked, with what later checks compare against."""

    model: Any
    tokenizer: Any
    verification: dict[str, float]
    inputs: torch.Tensor  # the fixed verification inputs
    unmerged: torch.Tensor  # the adapter model's logits on them
    merge_base: str  # which base weights the adapter went onto (lmforge_export.json)


def merge_adapter(
    base: str,
    adapter: str,
    allow_unsafe_pickle: bool = False,
    qlora_base: QloraBase = "dequantized",
    trust_remote_code: bool = False,
) -> MergedModel:
    """Load base + adapter in fp32, merge, and verify the merge against the unmerged and base models."""
    check_mergeable(adapter)
    tokenizer = load_plain_tokenizer(tokenizer_source(base, adapter), trust_remote_code)
    base_model = load_base_model(base, torch.float32, allow_unsafe_pickle, trust_remote_code)
    quantized = quantized_training(adapter)
    if quantized is not None and qlora_base == "dequantized":
        use_dequantized_base(base_model, base, quantized)
    peft_model = attach_adapter(base_model, adapter, allow_unsafe_pickle)
    check_vocab_covers(peft_model, tokenizer)
    inputs = fixed_inputs(min(len(tokenizer), peft_model.get_input_embeddings().num_embeddings))
    merged, numbers, unmerged = merge_verified(peft_model, inputs)
    return MergedModel(merged, tokenizer, numbers, inputs, unmerged, describe(quantized, qlora_base))


def check_destination(out: Path, overwrite: bool, inputs: dict[str, str]) -> None:
    """--overwrite replaces an earlier export only: never an input, and never a folder export did not write."""
    for flag, path in inputs.items():
        if overlaps(path, out):
            raise ConfigError(f"export destination {str(out)!r} overlaps {flag} {path}; choose another --output")
    if not out.exists():
        return
    if not overwrite:
        raise ConfigError(f"export destination {str(out)!r} already exists; pass --overwrite or choose another folder")
    if not out.is_dir() or (any(out.iterdir()) and not (out / METADATA).is_file()):
        raise ConfigError(
            f"export destination {str(out)!r} is not an lmforge export (no {METADATA}); --overwrite only replaces "
            "earlier exports. Nothing was deleted; choose another --output"
        )


def merge_verified(peft_model: Any, inputs: torch.Tensor) -> tuple[Any, dict[str, float], torch.Tensor]:
    """`merge_and_unload` in fp32, with the merged, unmerged and base logits compared on fixed inputs.

    Returns the merged model, the verification numbers and the unmerged logits (the reference for the files)."""
    unmerged = logits_of(peft_model, inputs)
    with peft_model.disable_adapter():
        base = logits_of(peft_model, inputs)
    merged = peft_model.merge_and_unload()
    numbers = check_merge(logits_of(merged, inputs), unmerged, base)
    logger.info(
        "merge check: max abs logit diff merged vs unmerged %.3g (<= 1e-4), merged vs base %.3g (> 1e-3)",
        numbers["merged_vs_unmerged"],
        numbers["merged_vs_base"],
    )
    return merged, numbers, unmerged


def set_generation_stops(model: Any, tokenizer: Any) -> None:
    """Generation stops on every end-of-turn id of the tokenizer's chat template (plus EOS), pads with its pad."""
    from lmforge.templates import get_template

    config = model.generation_config
    if getattr(tokenizer, "chat_template", None):
        stops = get_template("auto", tokenizer).stop_token_ids(tokenizer)
        config.eos_token_id = stops[0] if len(stops) == 1 else stops
    if tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id


def write_model(model: Any, tokenizer: Any, folder: Path, shard_size: str) -> None:
    """Sharded safetensors, tokenizer (with its chat template), generation config; never a pickle file (D16)."""
    folder.mkdir(parents=True)
    model.config.use_cache = True
    model.save_pretrained(folder, max_shard_size=shard_size)
    tokenizer.save_pretrained(folder)
    pickles = sorted(p.name for p in folder.rglob("*") if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ExportError(f"export wrote pickle files ({', '.join(pickles)}); only safetensors are allowed")


def staging_dir(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.lmforge-{kind}"


def publish(staging: Path, out: Path) -> None:
    """Rename the finished folder into place; an existing destination is moved aside first, then deleted."""
    out.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if out.exists():
        old = staging_dir(out, "old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old)
