"""Load a tokenizer and a causal LM the way training needs them, with safe defaults.

Safety (QUALITY D1, D3): model code from a folder or the hub runs only with `trust_remote_code: true`, and
weights load only from safetensors, never from pickle files. Errors a user can cause (missing folder, hub id not
cached while offline, custom code, pickle weights) become `ConfigError`s saying what to do instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.models.attention import use_packed_sdpa
from lmforge.utils.errors import ConfigError
from lmforge.utils.logging import get_logger
from lmforge.utils.paths import meant_as_local_path

logger = get_logger(__name__)

# Tokens that exist only to pad, tried in order before falling back to EOS (which would then also be padding).
PAD_CANDIDATES = ("<|pad|>", "<pad>", "[PAD]", "<|finetune_right_pad_id|>", "<|endoftext|>")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
CONFIG_FILES = ("config.json", "tokenizer_config.json")


def load_tokenizer(model_cfg: ModelConfig) -> Any:
    """The model's tokenizer, padded on the right, with a pad token and the configured extra special tokens."""
    from transformers import AutoTokenizer

    if model_cfg.tokenizer_name_or_path:  # e.g. an extended vocabulary (`lmforge tokenizer extend`)
        model_cfg = dataclasses.replace(model_cfg, name_or_path=model_cfg.tokenizer_name_or_path)
    check_remote_code(model_cfg)
    tokenizer = from_pretrained_checked(AutoTokenizer.from_pretrained, model_cfg, "tokenizer")
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = _pick_pad_token(tokenizer)
        logger.info("tokenizer has no pad token; using %r (id %d)", tokenizer.pad_token, tokenizer.pad_token_id)
    if model_cfg.new_special_tokens:
        added = tokenizer.add_special_tokens(
            {"extra_special_tokens": list(model_cfg.new_special_tokens)}, replace_extra_special_tokens=False
        )
        logger.info("added %d new special tokens: %s", added, ", ".join(model_cfg.new_special_tokens))
    return tokenizer


def _pick_pad_token(tokenizer: Any) -> str:
    vocab = tokenizer.get_vocab()
    for token in PAD_CANDIDATES:
        if token in vocab:
            return token
    if tokenizer.eos_token is None:
        raise ConfigError("the tokenizer has neither a pad token nor an EOS token; cannot pad batches")
    return str(tokenizer.eos_token)


def load_model(
    model_cfg: ModelConfig, tokenizer: Any, method_cfg: MethodConfig | None = None, num_labels: int | None = None
) -> Any:
    """The causal LM in the configured dtype, ready to train: no KV cache, embeddings covering the tokenizer.

    `method_cfg` matters only for qlora, whose base weights are quantised while they load. With `num_labels` the
    same backbone loads as *ForSequenceClassification with a new `score` head instead (reward models)."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    from lmforge.models.quantization import quantization_config

    check_remote_code(model_cfg)
    check_safetensors_only(model_cfg.name_or_path)
    dtype = resolve_dtype(model_cfg.dtype)
    quantization = quantization_config(method_cfg, model_cfg)
    head = {} if num_labels is None else {"num_labels": num_labels}
    model = from_pretrained_checked(
        (AutoModelForCausalLM if num_labels is None else AutoModelForSequenceClassification).from_pretrained,
        model_cfg,
        "model",
        **head,
        dtype=dtype,
        attn_implementation=model_cfg.attn_implementation,
        use_safetensors=True,
        **({"quantization_config": quantization} if quantization is not None else {}),
    )
    if quantization is not None:
        from lmforge.models.quantization import keep_cpu_weights_unpacked

        keep_cpu_weights_unpacked(model)
    use_packed_sdpa(model)  # same maths as stock SDPA; packed/padding-free rows attend per sample
    logger.info("loaded %s (%s, attention %s)", type(model).__name__, dtype, model.config._attn_implementation)
    resize_embeddings(model, len(tokenizer), model_cfg.resize_vocab_multiple)
    if model_cfg.tokenizer_name_or_path:
        from lmforge.models.vocab import init_new_rows

        init_new_rows(model, model_cfg.tokenizer_name_or_path)  # pieces from `lmforge tokenizer extend`
    model.config.use_cache = False
    generation = getattr(model, "generation_config", None)  # score-head models have none
    if generation is not None and generation.pad_token_id is None:
        generation.pad_token_id = tokenizer.pad_token_id
    if model_cfg.gradient_checkpointing:
        # Recent transformers 5 releases renamed the method (the old name warns); older ones have only the old
        # name. Non-reentrant checkpointing needs no requires_grad trick on the inputs (prepare_model still adds
        # one when the embeddings are frozen).
        enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
        enable({"use_reentrant": False})
    return model


def resolve_dtype(name: str) -> torch.dtype:
    """`auto` is bf16 on a CUDA GPU that supports it, otherwise fp32 (fp16 only when asked for)."""
    if name == "auto":
        return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32
    return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]


def resize_embeddings(model: Any, num_tokens: int, multiple: int) -> None:
    """Grow the embeddings to cover `num_tokens` (rounded up to `multiple`); new rows are the mean of old rows.

    With the mean (rather than a random draw) a new token starts with the average input vector and the average
    logit, so untrained rows cannot dominate the softmax or push hidden states off-distribution.
    """
    old = embedding_rows(model.get_input_embeddings().weight)
    if num_tokens <= old:
        return
    model.resize_token_embeddings(num_tokens, pad_to_multiple_of=multiple or None, mean_resizing=False)
    new = embedding_rows(model.get_input_embeddings().weight)
    modules = [m for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None]
    with _gathered_for_update([m.weight for m in modules]), torch.no_grad():
        for module in modules:
            if module.weight.shape[0] == new:
                module.weight[old:] = module.weight[:old].mean(dim=0, keepdim=True)
    logger.info("resized embeddings %d -> %d rows for %d tokenizer tokens (mean-initialised)", old, new, num_tokens)


def embedding_rows(weight: torch.Tensor) -> int:
    """Rows of an embedding matrix. Under DeepSpeed ZeRO-3 each rank holds an empty local shard and the full
    shape is `ds_shape`; reading `.shape` there sees 0 rows (and a mean over them writes NaN into the shard)."""
    return int(getattr(weight, "ds_shape", weight.shape)[0])


def _gathered_for_update(params: list[Any]) -> Any:
    """Under ZeRO-3, the full parameters, with rank 0's edits scattered back on exit; otherwise a no-op."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    if not is_deepspeed_zero3_enabled():
        return contextlib.nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(params, modifier_rank=0)


def _is_local(name_or_path: str) -> bool:
    return os.path.isdir(os.path.expanduser(name_or_path))


def check_remote_code(model_cfg: ModelConfig) -> None:
    """Refuse (or, when allowed, announce with hashes) the Python files a local model folder would run."""
    if not model_cfg.name_or_path:
        raise ConfigError("model.name_or_path is required: a local model folder or a hub id")
    if not _is_local(model_cfg.name_or_path):
        if meant_as_local_path(model_cfg.name_or_path):
            raise ConfigError(f"model folder {model_cfg.name_or_path!r} does not exist (and it is not a hub id)")
        return  # a hub id: transformers itself refuses remote code unless trusted (reworded in _from_pretrained)
    folder = Path(os.path.expanduser(model_cfg.name_or_path))
    files = remote_code_files(folder)
    if not files:
        return
    names = ", ".join(str(folder / f) for f in files)
    if not model_cfg.trust_remote_code:
        raise ConfigError(
            f"model folder {str(folder)!r} needs custom Python code to load ({names}); lmforge does not run it "
            "unless you pass --trust-remote-code (in a config: model.trust_remote_code: true) after reading those "
            "files"
        )
    for name in files:
        path = folder / name
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "missing"
        logger.warning("trust_remote_code: will run %s (sha256 %s)", path, digest)


def remote_code_files(folder: Path) -> list[str]:
    """Python files named by `auto_map` in the folder's config.json / tokenizer_config.json."""
    modules: set[str] = set()
    for config_name in CONFIG_FILES:
        path = folder / config_name
        if not path.is_file():
            continue
        try:
            auto_map = json.loads(path.read_text(encoding="utf-8")).get("auto_map") or {}
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ConfigError(f"{path}: not a valid JSON object ({exc})") from None
        for value in auto_map.values():
            for ref in value if isinstance(value, list) else [value]:
                if ref:  # "module.Class" or "repo--module.Class"; tokenizer entries may be [slow, None]
                    modules.add(ref.split("--")[-1].rsplit(".", 1)[0] + ".py")
    return sorted(modules)


def check_safetensors_only(name_or_path: str) -> None:
    """A local folder must hold safetensors weights; pickle weights could run code when loaded (QUALITY D1)."""
    if not _is_local(name_or_path):
        return  # hub downloads are restricted by use_safetensors=True
    folder = Path(os.path.expanduser(name_or_path))
    if any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ConfigError(
            f"model folder {str(folder)!r} has only pickle weights ({', '.join(pickles)}), which can run code when "
            "loaded; lmforge loads safetensors only. Convert them in a trusted environment, e.g. "
            "model.save_pretrained(dir, safe_serialization=True)"
        )
    raise ConfigError(f"model folder {str(folder)!r} has no *.safetensors weights")


def from_pretrained_checked(load: Any, model_cfg: ModelConfig, what: str, **kwargs: Any) -> Any:
    """Call a transformers `from_pretrained`, turning user-caused failures into a `ConfigError`."""
    try:
        return load(
            model_cfg.name_or_path,
            revision=model_cfg.revision,
            trust_remote_code=model_cfg.trust_remote_code,
            **_hub_kwargs(model_cfg),
            **kwargs,
        )
    except ValueError as exc:
        if "trust_remote_code" not in str(exc):
            raise
        raise ConfigError(
            f"{what} {model_cfg.name_or_path!r} needs custom Python code from its repository to load; lmforge does "
            "not run it unless you pass --trust-remote-code (in a config: model.trust_remote_code: true) after "
            "reading that code"
        ) from None
    except OSError as exc:
        if _is_local(model_cfg.name_or_path):
            raise ConfigError(f"cannot load the {what} from {model_cfg.name_or_path!r}: {exc}") from None
        raise ConfigError(
            f"cannot load the {what} {model_cfg.name_or_path!r}: it is not a local folder, and it is not in the "
            "Hugging Face cache or the hub is unreachable (offline?). Download it once with network access "
            f"(huggingface-cli download {model_cfg.name_or_path}) or give a local folder. Details: {exc}"
        ) from None


def _hub_kwargs(model_cfg: ModelConfig) -> dict[str, Any]:
    """Fail fast when the hub is unreachable (QUALITY B12): use the cached copy, or say it is missing.

    Without this, every file lookup retries with backoff for about 20 s before falling back to the cache.
    """
    from huggingface_hub import constants, try_to_load_from_cache

    if _is_local(model_cfg.name_or_path) or constants.is_offline_mode() or _hub_reachable(constants.ENDPOINT):
        return {}
    cached = try_to_load_from_cache(model_cfg.name_or_path, "config.json", revision=model_cfg.revision)
    if isinstance(cached, str):
        logger.warning("the Hugging Face hub is unreachable; using the cached copy of %s", model_cfg.name_or_path)
        return {"local_files_only": True}
    raise ConfigError(
        f"model.name_or_path: {model_cfg.name_or_path!r} is not a local folder and not in the Hugging Face cache, "
        f"and the hub ({constants.ENDPOINT}) is unreachable. Download it once with network access "
        f"(hf download {model_cfg.name_or_path}) or give a local folder"
    )


@functools.lru_cache(maxsize=4)
def _hub_reachable(endpoint: str) -> bool:
    from huggingface_hub import get_session

    try:
        get_session().head(endpoint, timeout=5)
    except Exception:  # any network failure (DNS, refused, timeout, proxy) means unreachable
        return False
    return True
