"""Training FLOPs per token and the time they take on a device at a model FLOPs utilisation (MFU).

Per token (Kaplan/Chinchilla accounting, as in LLaMA-Factory's cal_mfu.py):
  forward   2 x matmul params (decoder linears + output head) + 2 x L x h x s (causal attention: QK^T and AV);
  backward  2 x forward for trainable weights (input and weight gradients), 1 x forward for frozen ones (input
            gradients only: LoRA/QLoRA/freeze skip the frozen weight-gradient GEMMs);
  + 1 forward with gradient checkpointing; + 1 forward of the reference model for dpo/kto (not precomputed).
Time = FLOPs / (GPUs x peak x MFU). Rollout generation (ppo/grpo) is memory-bound and not modelled here.
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config.schema import RunConfig
from lmforge.config.stages import stage_spec
from lmforge.estimate.shape import ModelShape


@dataclass(frozen=True)
class Flops:
    per_token: float
    formula: str


def flops_per_token(cfg: RunConfig, shape: ModelShape, mean_seq: float) -> Flops:
    matmul = shape.matmul_params
    attention = 2 * shape.layers * shape.hidden * mean_seq
    forward = 2 * matmul + attention
    trainable_share = min(1.0, shape.trainable_params / max(matmul, 1))
    total = forward * (2 + trainable_share)
    parts = [f"fwd 2 x {matmul:,} params + 2 L h s {attention:,.0f}", f"bwd {1 + trainable_share:.2f} x fwd"]
    if cfg.model.gradient_checkpointing:
        total += forward
        parts.append("+ recompute fwd")
    spec = stage_spec(cfg.stage)
    if spec.is_preference and spec.reference != "none" and not cfg.pref.precompute_ref_log_probs:
        total += forward
        parts.append("+ reference fwd")
    return Flops(total, ", ".join(parts))


def step_seconds(tokens_per_step: float, flops: Flops, gpus: int, peak: float, mfu: float) -> float:
    return tokens_per_step * flops.per_token / (gpus * peak * mfu)
