"""TrainingArguments from the `train:` section, on top of the defaults users and the benchmarks expect.

The user's `train:` keys always win; the defaults only fill what was left unset.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from lmforge.config.schema import LMFORGE_TRAIN_KEYS, RunConfig
from lmforge.config.stages import stage_spec


def default_logging_steps(train: dict[str, Any]) -> int:
    """Every step for short runs (tests, smoke runs), every 10 otherwise."""
    max_steps = int(train.get("max_steps", -1) or -1)
    return 1 if 0 < max_steps <= 50 else 10


def token_count_mode(cfg: RunConfig) -> str:
    """What the stage's spec says (pair rows: all, rollouts: counted by the trainer); for text and chat batches,
    padding-free ones hold no padding, but their EOS tokens often equal the pad id, which "non_padding" (without
    an attention_mask) would skip; so count every token there and only masked-in tokens otherwise."""
    mode = stage_spec(cfg.stage).token_count
    if mode != "auto":
        return mode
    return "all" if cfg.data.padding_free or cfg.data.packing else "non_padding"


def _report_to() -> str | list[str]:
    has_tensorboard = importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX")
    return ["tensorboard"] if has_tensorboard else "none"


def _device_defaults(cfg: RunConfig) -> dict[str, Any]:
    import torch

    defaults: dict[str, Any] = {}
    if not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # DDP on CPU: gloo (NCCL needs GPUs), and use_cpu, without which accelerate initialises the process group
        # but reports DistributedType.NO, so the model is never DDP-wrapped and gradients are never averaged.
        defaults.update(ddp_backend="gloo", use_cpu=True)
    if not torch.cuda.is_available():
        defaults["dataloader_pin_memory"] = False  # pinning needs an accelerator; on CPU it only warns
    if (
        torch.cuda.is_available()
        and cfg.model.dtype in ("auto", "bfloat16")
        and torch.cuda.is_bf16_supported()
        and not cfg.train.get("fp16")
    ):
        defaults["bf16"] = True
    return defaults


def training_argument_values(cfg: RunConfig) -> dict[str, Any]:
    """The keyword arguments for TrainingArguments: lmforge defaults, then the user's `train:` section."""
    values: dict[str, Any] = {
        "logging_steps": default_logging_steps(cfg.train),
        "report_to": _report_to(),
        "remove_unused_columns": False,  # collators need position_ids etc., which the model signature check drops
        "include_num_input_tokens_seen": token_count_mode(cfg),
        "label_names": ["labels"],  # PEFT wrappers hide the model's forward signature from label detection
        "ddp_find_unused_parameters": False,  # every trainable parameter is used; True costs an extra graph walk
        "dataloader_num_workers": 0,
        # model.gradient_checkpointing is applied when the model is loaded (models/model_loading.py), not here
        **_device_defaults(cfg),
    }
    values.update({k: v for k, v in cfg.train.items() if k not in LMFORGE_TRAIN_KEYS})  # lmforge reads those
    return values


def build_training_arguments(cfg: RunConfig, **overrides: Any) -> Any:
    """transformers.TrainingArguments for this run (creating it also sets up torch.distributed under torchrun)."""
    from transformers import TrainingArguments

    args = TrainingArguments(**{**training_argument_values(cfg), **overrides})
    if args.deepspeed:
        join_deepspeed_to_process_group()
    return args


def join_deepspeed_to_process_group() -> None:
    """Under torchrun on CPU, use_cpu makes accelerate start a gloo group but skip deepspeed.comm; ZeRO-3's
    zero.Init (run while the model loads, before the Trainer exists) then sees world size 1 and rejects the batch
    sizes that transformers computed for the real world size. Wrapping the existing group fixes that; on GPUs
    accelerate has already done it, and without a process group there is nothing to join."""
    import torch.distributed

    if not torch.distributed.is_available() or not torch.distributed.is_initialized():
        return
    import deepspeed

    if not deepspeed.comm.is_initialized():
        deepspeed.init_distributed(dist_backend=torch.distributed.get_backend(), auto_mpi_discovery=False)
