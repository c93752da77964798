"""Per-device training memory of a config, component by component, each with the formula that produced it.

Peak = static + max(forward/backward phase, optimizer-step phase, rollout phase, load phase):
  static    weights (+ reference / reward model) + optimizer states (they live across steps);
  fwd/bwd   saved activations of the largest micro-batch + the loss buffers at the start of backward (log-softmax
            output, its gradient and the logits gradient, fp32) + the output head's gradient, produced first;
  step      every trainable parameter's gradient;
  rollout   (ppo/grpo) the KV cache of generation;
  load      (qlora) the checkpoint's tensors, held in the model dtype while loading quantises them.
Activations per token and layer of a Llama/Qwen-style block, counted from the tensors autograd saves with SDPA
(Korthikanti et al. without dropout; FlashAttention-style kernels keep no score matrix):
  2h (input RMSNorm in/out) + 2h + 2kv (q, k, v, attention output kept by SDPA) + h (o_proj input)
  + 2h (post-attention RMSNorm in/out) + 4i (gate, up, silu(gate), product)  = 7h + 2kv + 4i values,
plus r per adapted linear (LoRA B inputs). Gradient checkpointing keeps one h per layer (the block inputs) and
recomputes one block at a time. The constants were checked against measured peaks (docs/estimate.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from lmforge.config.methods import method_spec
from lmforge.config.schema import RunConfig
from lmforge.config.stages import stage_spec
from lmforge.estimate.batch_tokens import TokenStats
from lmforge.estimate.hardware import human
from lmforge.estimate.shape import ModelShape
from lmforge.utils.errors import ConfigError

#: optimizer state bytes per trainable parameter, as a multiple of the parameter's own bytes or absolute
ADAM_LIKE = ("adamw_torch", "adamw_torch_fused", "adamw_torch_xla", "adamw_apex_fused", "adamw_hf", "adam")
EIGHT_BIT = ("adamw_bnb_8bit", "adamw_8bit", "paged_adamw_8bit", "adamw_torch_8bit", "paged_adamw_32bit")
NF4_BYTES = 0.5  # per quantised weight
NF4_CONSTANTS = {True: 1 / 64 + 4 / (64 * 256), False: 4 / 64}  # absmax per 64-block (double quant: 8-bit + fp32)
CPU_CHECKPOINT_LAYERS = 1
#: phases that do not overlap: each adds to the static part on its own
PHASES = ("fwd/bwd", "step", "rollout", "load")  # blocks recomputed at once under gradient checkpointing


@dataclass(frozen=True)
class Component:
    name: str
    bytes: float
    formula: str
    phase: str  # static | fwd/bwd | step | rollout | cpu


@dataclass(frozen=True)
class Plan:
    """What the estimate varies: the knobs --fit searches over."""

    batch: int
    gpus: int = 1
    zero_stage: int = 0
    offload_optimizer: bool = False
    offload_params: bool = False


def _bytes(dtype: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2}[dtype]


def optimizer_bytes(optim: str, shape: ModelShape) -> tuple[float, str]:
    """(bytes, formula) of the optimizer states."""
    per_param = shape.trainable_bytes / max(shape.trainable_params, 1)
    if optim in ADAM_LIKE:
        return 2 * shape.trainable_bytes, f"Adam m + v = 2 x {per_param:g} B x trainable"
    if optim in EIGHT_BIT:
        if optim == "paged_adamw_32bit":
            return 8 * shape.trainable_params, "paged Adam 32-bit = 8 B x trainable"
        return 2 * shape.trainable_params, "8-bit Adam m + v = 2 x 1 B x trainable"
    if optim in ("sgd",):
        return 0.0, "SGD without momentum keeps no state"
    if optim in ("lion_32bit", "lion_8bit", "paged_lion_32bit", "paged_lion_8bit"):
        size = 1 if "8bit" in optim else per_param
        return size * shape.trainable_params, f"Lion momentum = {size:g} B x trainable"
    if optim == "adafactor":
        factored = sum(4 * (s[0] + s[1]) if len(s) == 2 else 4 * s[0] for s in shape.trainable_matrices)
        return factored, "Adafactor row + column second moments = 4 B x (rows + cols) per matrix"
    raise ConfigError(f"estimate: optimizer train.optim={optim!r} is not modelled; use an Adam, 8-bit, Lion, SGD one")


def activation_dtype_bytes(dtype: str) -> int:
    return _bytes(dtype)


def memory_components(
    cfg: RunConfig, shape: ModelShape, dtype: str, tokens: TokenStats, plan: Plan
) -> list[Component]:
    """Every component for one device; bytes are per device."""
    out: list[Component] = []
    b = activation_dtype_bytes(dtype)
    h, layers, kv = shape.hidden, shape.layers, shape.kv_heads * shape.head_dim
    n = plan.gpus
    stage = plan.zero_stage
    # --- weights
    weight_bytes = float(sum(shape.bytes_by_dtype.values()))
    formula = " + ".join(f"{human(v)} {k}" for k, v in shape.bytes_by_dtype.items())
    quantised = method_spec(cfg.method.name).quantised_variant_of is not None
    if quantised:
        base = shape.linear_base_params * b
        if cfg.method.quant_bits == 4:
            quant = shape.linear_base_params * (NF4_BYTES + NF4_CONSTANTS[cfg.method.quant_double])
            how = f"{NF4_BYTES + NF4_CONSTANTS[cfg.method.quant_double]:.4f} B ({cfg.method.quant_type})"
        else:
            quant = shape.linear_base_params * (1 + 4 / 4096)
            how = "1 B (int8)"
        weight_bytes += quant - base
        formula = f"{shape.linear_base_params:,} quantised linear weights x {how} + the rest at {b} B"
        out.append(Component("dequantised weight", shape.largest_linear_params * b,
                             "one linear dequantised per matmul (the largest)", "fwd/bwd"))  # fmt: skip
        out.append(Component("checkpoint while quantising", (shape.total_params - shape.adapter_params) * b,
                             "the checkpoint's tensors in the model dtype, held while loading quantises them",
                             "load"))  # fmt: skip
    deepspeed_half = stage > 0 and dtype != "float32"  # the DeepSpeed engine holds the module in 16 bits
    if deepspeed_half:
        weight_bytes, formula = float(shape.total_params * b), f"{shape.total_params:,} x {b} B (DeepSpeed {dtype})"
    if stage == 3 and not plan.offload_params:
        gathered = 2 * shape.largest_layer_params * b
        out.append(
            Component("weights", weight_bytes / n + gathered, f"({formula}) / {n} GPUs + 2 gathered layers", "static")
        )
    elif plan.offload_params:
        out.append(
            Component("weights", 2 * shape.largest_layer_params * b, "offloaded; 2 gathered layers on GPU", "static")
        )
        out.append(Component("weights (CPU)", weight_bytes, formula, "cpu"))
    else:
        out.append(Component("weights", weight_bytes, formula, "static"))
    if needs_reference_copy(cfg):
        ref = float(shape.total_params - shape.adapter_params) * b
        out.append(Component("reference model", ref / (n if stage == 3 else 1),
                             f"frozen copy of the policy: {shape.total_params:,} x {b} B", "static"))  # fmt: skip
    # --- optimizer. DeepSpeed keeps fp32 Adam states and fp32 master weights for 16-bit params (K = 12 of the ZeRO
    # paper); the plain Trainer steps the params in their own dtype.
    optim = str(cfg.train.get("optim", "adamw_torch"))
    opt, opt_formula = optimizer_bytes(optim, shape)
    if deepspeed_half:
        if optim in ADAM_LIKE:
            opt, opt_formula = 8.0 * shape.trainable_params, "fp32 Adam m + v = 8 B x trainable"
        opt += 4 * shape.trainable_params
        opt_formula += " + fp32 master weights 4 B x trainable"
    if plan.offload_optimizer:
        out.append(Component("optimizer states (CPU)", opt, opt_formula, "cpu"))
    else:
        divisor = n if stage >= 1 else 1
        out.append(
            Component(
                "optimizer states", opt / divisor, opt_formula + (f" / {n} (ZeRO-{stage})" if stage else ""), "static"
            )
        )
    # --- gradients (step phase)
    grads = float(shape.trainable_params * b if deepspeed_half else shape.trainable_bytes)
    out.append(
        Component("gradients", grads / (n if stage >= 2 else 1), f"trainable {shape.trainable_params:,} x param bytes"
                  + (f" / {n} (ZeRO-{stage})" if stage >= 2 else ""), "step")
    )  # fmt: skip
    # --- activations (forward/backward phase)
    rows = plan.batch * (cfg.rl.num_generations if stage_spec(cfg.stage).is_online_rl else 1)
    peak_tokens = tokens.peak_tokens(rows)
    per_layer = 7 * h + 2 * kv + 4 * shape.intermediate + shape.adapter_rank_sum
    what = f"7h + 2kv + 4i{' + sum(r)' if shape.adapter_rank_sum else ''} = {per_layer:,}"
    if cfg.model.gradient_checkpointing:
        acts = peak_tokens * b * (layers * h + CPU_CHECKPOINT_LAYERS * per_layer)
        formula = f"T {peak_tokens:,} x {b} B x (L {layers} x h {h} + one block ({what}))"
    else:
        acts = peak_tokens * b * layers * per_layer
        formula = f"T {peak_tokens:,} x {b} B x L {layers} x ({what})"
    out.append(Component("activations", acts, formula, "fwd/bwd"))
    if cfg.model.attn_implementation == "eager":
        squares = sum(length * length for length in tokens.lengths[:rows])
        out.append(Component("attention scores", layers * shape.heads * squares * (4 + b),
                             f"eager: L x heads x sum(s^2) x ({4 + b} B)", "fwd/bwd"))  # fmt: skip
    if shape.dora_weight_params:
        out.append(Component("DoRA weight norms", layers * shape.dora_weight_params * b,
                             "L x adapted weights per block x bytes (W + BA)", "fwd/bwd"))  # fmt: skip
    if quantised:  # the dequantised weight is what autograd keeps to compute input gradients
        kept = layers if not cfg.model.gradient_checkpointing else CPU_CHECKPOINT_LAYERS
        per_block = shape.linear_base_params // max(layers, 1)
        out.append(Component("dequantised weights (saved)", kept * per_block * b,
                             f"{kept} block(s) x {per_block:,} linear weights x {b} B", "fwd/bwd"))  # fmt: skip
    logit_tokens = tokens.peak_logit_tokens(rows)
    where = "trained positions" if tokens.logit_tokens else "T"
    loss = 3 * logit_tokens * shape.vocab * 4
    out.append(Component("logits / loss", loss, f"3 x {where} {logit_tokens:,} x V {shape.vocab:,} x 4 B (fp32)",
                         "fwd/bwd"))  # fmt: skip
    if shape.head_trainable_params:
        head = shape.head_trainable_params * grads / max(shape.trainable_params, 1)
        out.append(Component("output head gradient", head, "the first gradient of backward, with the activations",
                             "fwd/bwd"))  # fmt: skip
    # --- rollouts
    if stage_spec(cfg.stage).is_online_rl:
        longest = tokens.rollout_lengths[0]
        cache = 2 * layers * kv * rows * longest * b
        out.append(
            Component(
                "rollout KV cache", cache, f"2 x L x kv {kv} x {rows} seqs x {longest} tokens x {b} B", "rollout"
            )
        )
    return out


def peak_bytes(components: list[Component]) -> float:
    static = sum(c.bytes for c in components if c.phase == "static")
    phases = {phase: sum(c.bytes for c in components if c.phase == phase) for phase in PHASES}
    return static + max(phases.values())


def needs_reference_copy(cfg: RunConfig) -> bool:
    """A frozen full copy of the policy is held (dpo/kto/ppo/grpo with full or freeze, not precomputed)."""
    if method_spec(cfg.method.name).reference != "frozen_copy":
        return False
    spec = stage_spec(cfg.stage)
    if spec.is_preference and cfg.pref.precompute_ref_log_probs:
        return False
    return spec.needs_reference(cfg.rl.beta)
