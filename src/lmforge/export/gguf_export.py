"""`lmforge export --format gguf`: a merged model (or base + adapter, merged first) -> a verified GGUF + Modelfile.

Like the safetensors export, everything is written to a hidden staging folder next to the destination, verified
there (gguf_verify, modelfile.check_pieces) and only then renamed into place: a failed check leaves no file.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import torch

from lmforge.export import gguf_llamacpp
from lmforge.export.bases import QloraBase
from lmforge.export.gguf_arch import arch_for
from lmforge.export.gguf_file import GGUF_TYPES, Provenance, tensor_type_counts, write_gguf
from lmforge.export.gguf_tokenizer import adds_bos
from lmforge.export.gguf_verify import verify_gguf
from lmforge.export.merge import METADATA, check_destination, merge_adapter, publish, staging_dir
from lmforge.export.modelfile import check_pieces, derive_pieces, modelfile_text, stop_strings, training_system_prompt
from lmforge.models.adapters import load_base_model, load_plain_tokenizer
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger
from lmforge.utils.paths import ensure_writable_dir

logger = get_logger(__name__)

MODELFILE = "Modelfile"
ALL_TYPES = (*GGUF_TYPES, *gguf_llamacpp.K_QUANTS)


def export_gguf(
    model: str,
    output: str,
    gguf_type: str = "f16",
    adapter: str | None = None,
    template: str = "auto",
    system: str | None = None,
    overwrite: bool = False,
    allow_unsafe_pickle: bool = False,
    qlora_base: QloraBase = "dequantized",
    permute: bool = True,
) -> dict[str, Any]:
    """Write OUTPUT/<name>.<type>.gguf, OUTPUT/Modelfile and OUTPUT/lmforge_export.json; returns the metadata.

    `permute=False` writes llama q/k unpermuted; it exists for the negative-control test and must fail."""
    if gguf_type not in (*GGUF_TYPES, *gguf_llamacpp.K_QUANTS):
        raise ConfigError(f"--gguf-type must be one of {', '.join(ALL_TYPES)}, got {gguf_type!r}")
    if importlib.util.find_spec("gguf") is None:
        raise ConfigError("GGUF export needs the gguf package: pip install 'lmforge[gguf]'")
    if gguf_type in gguf_llamacpp.K_QUANTS:
        gguf_llamacpp.require()
    out = Path(output).expanduser()
    check_destination(out, overwrite, {"--model": model, **({"--adapter": adapter} if adapter else {})})
    ensure_writable_dir(out.parent, "export destination folder")
    metadata: dict[str, Any] = {"format": "gguf", "base": model, "adapter": adapter, "gguf_type": gguf_type}
    if system is None and adapter:
        system = training_system_prompt(adapter)
        metadata["system_from"] = "training data" if system is not None else None
    if adapter:
        merged = merge_adapter(model, adapter, allow_unsafe_pickle, qlora_base)
        hf_model, tokenizer = merged.model, merged.tokenizer
        metadata |= {"merge_base": merged.merge_base, "verification": dict(merged.verification)}
    else:
        hf_model = load_base_model(model, torch.float32, allow_unsafe_pickle)
        tokenizer = load_plain_tokenizer(model)
        metadata["verification"] = {}
    arch = arch_for(hf_model.config)
    chat = _chat_template(template, tokenizer)
    stop_ids = chat.stop_token_ids(tokenizer) if chat else [tokenizer.eos_token_id]
    name = out.name
    filename = f"{name}.{gguf_type}.gguf"
    bos_added = adds_bos(tokenizer)
    staging = staging_dir(out, "tmp")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
        provenance = Provenance(name, model, adapter, chat.name if chat else None)
        jinja = chat.jinja() if chat else None
        prompts = _prompts(chat, tokenizer)
        written = gguf_type if gguf_type in GGUF_TYPES else "f32"  # k-quants: llama.cpp quantises a verified f32
        first = filename if written == gguf_type else f"{name}.f32.gguf"
        counts = write_gguf(staging / first, hf_model, tokenizer, arch, written, stop_ids, jinja, provenance, permute)
        numbers = verify_gguf(staging, first, hf_model, tokenizer, arch, written, prompts)
        if written != gguf_type:
            gguf_llamacpp.quantize(staging / first, staging / filename, gguf_type)
            (staging / first).unlink()
            numbers = {f"f32_{key}": value for key, value in numbers.items()}
            numbers |= verify_gguf(staging, filename, hf_model, tokenizer, arch, gguf_type, prompts)
            counts = tensor_type_counts(staging / filename)
        pieces = None
        if chat is not None:
            pieces = derive_pieces(chat, tokenizer, bos_added)
            numbers["modelfile_conversations"] = check_pieces(pieces, chat, tokenizer, bos_added)
        stops = stop_strings(tokenizer, [i for i in stop_ids if i is not None])
        (staging / MODELFILE).write_text(modelfile_text(filename, pieces, stops, system), encoding="utf-8")
        metadata["verification"] |= numbers
        metadata |= {"file": filename, "tensor_types": counts, "stop": stops, "template": provenance.template}
        (staging / METADATA).write_text(json.dumps(metadata, indent=2) + "\n", encoding="utf-8")
        publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    logger.info("exported %s to %s: %s", model, out / filename, metadata["verification"])
    return metadata


def _chat_template(name: str, tokenizer: Any) -> Any:
    """The template whose Jinja and turn format go into the file; None for a model without a chat template."""
    from lmforge.templates import get_template

    if name == "auto" and not getattr(tokenizer, "chat_template", None):
        return None
    return get_template(name, tokenizer)


def _prompts(chat: Any, tokenizer: Any) -> list[list[int]]:
    """Fixed prompts for the greedy check: chat prompts when there is a template, plain text otherwise."""
    questions = ["What is the capital of France?", "写一首关于秋天的诗。", "def fib(n):"]
    if chat is None:
        return [tokenizer(q).input_ids for q in questions]
    return [chat.encode_prompt(tokenizer, [{"role": "user", "content": q}]) for q in questions]
