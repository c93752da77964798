"""Reward models: a causal-LM backbone with a scalar `score` head (transformers' *ForSequenceClassification with
num_labels=1), trained by stage rm and used by ppo/grpo through `load_reward_model(path).score(sequences)`.

Scores are read at each sample's last token of a padding-free row (position ids restart per sample), never found
through pad_token_id, so a sequence that ends in a token equal to the pad id still scores correctly. The folder the
rm stage writes is a normal transformers (full) or PEFT (lora, `score` in modules_to_save) folder, safetensors only,
plus `reward_model.json` naming the chat template the scores assume.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from lmforge.config.schema import MethodConfig, ModelConfig
from lmforge.models.attention import use_packed_sdpa
from lmforge.models.model_loading import (
    check_remote_code,
    check_safetensors_only,
    load_model,
)
from lmforge.utils.errors import ConfigError

if TYPE_CHECKING:
    from lmforge.templates import ChatTemplate

REWARD_INFO = "reward_model.json"
SCORE_BATCH_TOKENS = 8192  # tokens per scoring forward (one padding-free row)


def load_reward_backbone(model_cfg: ModelConfig, tokenizer: Any, method_cfg: MethodConfig | None = None) -> Any:
    """The base model as *ForSequenceClassification(num_labels=1), loaded and prepared exactly as `load_model`
    prepares a causal LM (qlora quantisation, packed SDPA, no KV cache, embeddings covering the tokenizer)."""
    model = load_model(model_cfg, tokenizer, method_cfg, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id  # plain transformers pools padded batches with it
    return model


def sequence_scores(model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """One fp32 score per sample of a padding-free batch: the score head's output at each sample's last token.

    The forward goes through `model` itself (so DDP and PEFT wrappers see it); the head's per-position output is
    captured with a hook, since the model's own pooling looks for pad tokens, which a packed row has none of.
    """
    inner = getattr(model, "module", model)  # DDP / accelerate wrappers
    base = inner.get_base_model() if hasattr(inner, "get_base_model") else inner
    captured: list[torch.Tensor] = []
    handle = base.score.register_forward_hook(lambda module, args, output: captured.append(output))
    try:
        model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False)
    finally:
        handle.remove()
    return captured[0][0, batch["last_positions"], 0].float()


def write_reward_info(folder: str | Path, template_name: str) -> None:
    (Path(folder) / REWARD_INFO).write_text(json.dumps({"num_labels": 1, "template": template_name}), encoding="utf-8")


@dataclass
class RewardModel:
    """A loaded reward model: `score(list of token-id lists) -> tensor` of one float per sequence."""

    model: Any
    tokenizer: Any
    template: ChatTemplate

    @torch.no_grad()
    def score(self, sequences: list[list[int]]) -> torch.Tensor:
        """Scores of prompt+response id sequences (encoded with `self.template`), in token-budgeted batches."""
        from lmforge.alignment.batches import pack_samples

        if any(len(seq) == 0 for seq in sequences):
            raise ValueError("cannot score an empty sequence")
        device = next(self.model.parameters()).device
        scores: list[torch.Tensor] = []
        start = 0
        while start < len(sequences):
            end, tokens = start, 0
            while end < len(sequences) and (end == start or tokens + len(sequences[end]) <= SCORE_BATCH_TOKENS):
                tokens += len(sequences[end])
                end += 1
            batch = pack_samples([(list(seq), [-100] * len(seq)) for seq in sequences[start:end]])
            scores.append(sequence_scores(self.model, {k: v.to(device) for k, v in batch.items()}).cpu())
            start = end
        return torch.cat(scores)


def load_reward_model(path: str, *, device: str | torch.device | None = None) -> RewardModel:
    """A folder written by stage rm (full model, or a PEFT adapter over its base), in eval mode."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from lmforge.templates import get_template

    folder = Path(path).expanduser()
    info_file = folder / REWARD_INFO
    if not info_file.is_file():
        raise ConfigError(f"{str(folder)!r} is no lmforge reward model (no {REWARD_INFO}; train one with stage: rm)")
    info = json.loads(info_file.read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    adapter = (folder / "adapter_config.json").is_file()
    base_path = (
        json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] if adapter else path
    )
    model_cfg = ModelConfig(name_or_path=str(base_path))
    check_remote_code(model_cfg)
    check_safetensors_only(str(base_path))
    model = AutoModelForSequenceClassification.from_pretrained(str(base_path), num_labels=1, use_safetensors=True)
    use_packed_sdpa(model)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(folder))
    model.to(device or "cpu").eval()
    return RewardModel(model, tokenizer, get_template(info["template"], tokenizer))


def as_sequence_classifier(model: Any) -> Any:
    """Saved adapter configs say SEQ_CLS, so the folder loads with PEFT's sequence-classification classes (also
    when training continued an SFT adapter, whose config says CAUSAL_LM)."""
    for config in getattr(model, "peft_config", {}).values():
        config.task_type = "SEQ_CLS"
    return model
