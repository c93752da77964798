"""The PPO policy + value model: a scalar value head on the policy's last hidden states, trained together.

One module holds both, so the HF Trainer's optimizer, gradient accumulation, clipping and DDP cover the head too.
It is saved as the policy's own folder (adapter or full model, loadable by `lmforge chat`/transformers/peft)
plus `value_head.safetensors`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lmforge.rl.logprobs import completion_logprobs
from lmforge.utils.errors import CheckpointError

VALUE_HEAD_FILE = "value_head.safetensors"


class PolicyWithValue(nn.Module):
    def __init__(self, policy: Any) -> None:
        super().__init__()
        self.policy = policy
        hidden = policy.config.get_text_config().hidden_size
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)  # values start at 0: no random baseline early in training
        nn.init.zeros_(self.value_head.bias)

    @property
    def config(self) -> Any:
        return self.policy.config

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, completion_len: int, temperature: float
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(completion token log-probs, values of the states the completion tokens were chosen in), both (B, C)."""
        logprobs, hidden = completion_logprobs(
            self.policy, input_ids, attention_mask, completion_len, temperature, with_hidden=True
        )
        assert hidden is not None
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return logprobs, values

    def save(self, folder: str | Path) -> None:
        self.policy.save_pretrained(str(folder), safe_serialization=True)
        state = {k: v.detach().contiguous().cpu() for k, v in self.value_head.state_dict().items()}
        save_file(state, str(Path(folder) / VALUE_HEAD_FILE))

    def load(self, folder: str | Path) -> None:
        """Restore policy and value head weights saved by `save` (resume from a checkpoint)."""
        folder = Path(folder)
        load_policy_weights(self.policy, folder)
        head = folder / VALUE_HEAD_FILE
        if not head.is_file():
            raise CheckpointError(f"{folder}: {VALUE_HEAD_FILE} is missing; cannot resume the PPO value head")
        self.value_head.load_state_dict(load_file(str(head)))


def load_policy_weights(policy: Any, folder: Path) -> None:
    """Adapter weights into a PeftModel, or full weights into a causal LM (tied weights are saved once)."""
    if hasattr(policy, "peft_config"):
        from peft import set_peft_model_state_dict

        file = folder / "adapter_model.safetensors"
        if not file.is_file():
            raise CheckpointError(f"{folder}: adapter_model.safetensors is missing")
        set_peft_model_state_dict(policy, load_file(str(file)))
        return
    file = folder / "model.safetensors"
    if not file.is_file():
        raise CheckpointError(f"{folder}: model.safetensors is missing (sharded full checkpoints are not supported)")
    result = policy.load_state_dict(load_file(str(file)), strict=False)
    tied = policy.config.get_text_config().tie_word_embeddings
    missing = [k for k in result.missing_keys if not (tied and k.endswith("lm_head.weight"))]
    if missing or result.unexpected_keys:
        raise CheckpointError(
            f"{file}: weights do not match the model (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )
