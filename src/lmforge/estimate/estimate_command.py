"""`lmforge estimate CONFIG`: the memory and time of a training config, printed component by component.

Reads the same YAML (and overrides) as `lmforge train`; builds the model on the meta device with the method
applied (shape.py), encodes the dataset as training will (tokens.py), prices every component (memory.py) and the
FLOPs (timing.py). `--measure` runs a few real steps to compare and to calibrate MFU; `--fit` searches the largest
batch / cutoff_len or the smallest ZeRO stage that fits the memory budget.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lmforge.config.schema import RunConfig
from lmforge.config.stages import stage_spec
from lmforge.estimate.batch_tokens import TokenStats, token_stats
from lmforge.estimate.hardware import DEFAULT_MFU, Device, device, human, parse_bytes
from lmforge.estimate.memory import PHASES, Component, Plan, memory_components, peak_bytes
from lmforge.estimate.shape import ModelShape, model_shape
from lmforge.estimate.timing import flops_per_token, step_seconds
from lmforge.utils.errors import ConfigError

DEFAULT_BATCH = 8  # TrainingArguments.per_device_train_batch_size default


@dataclass
class Inputs:
    cfg: RunConfig
    shape: ModelShape
    tokens: TokenStats
    dtype: str
    target: Device | None
    plan: Plan


def resolve_dtype(cfg: RunConfig, target: Device | None) -> str:
    """model.dtype as training resolves it on the target: auto = bf16 where supported, else fp32."""
    if cfg.model.dtype != "auto":
        return cfg.model.dtype
    if target is not None:
        return "bfloat16" if target.bf16 else "float32"
    return "bfloat16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "float32"


def zero_settings(cfg: RunConfig) -> tuple[int, bool, bool]:
    """(stage, offload optimizer, offload params) from train.deepspeed (a JSON path or mapping)."""
    ds = cfg.train.get("deepspeed")
    if not ds:
        return 0, False, False
    if isinstance(ds, str):
        try:
            ds = json.loads(Path(ds).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"train.deepspeed {ds!r}: cannot read the DeepSpeed JSON ({exc})") from exc
    zero = ds.get("zero_optimization", {})
    device_of = lambda key: (zero.get(key) or {}).get("device", "none") not in ("none", None)  # noqa: E731
    return int(zero.get("stage", 0)), device_of("offload_optimizer"), device_of("offload_param")


def build_inputs(cfg: RunConfig, gpus: int, gpu: str | None) -> Inputs:
    from lmforge.models.model_loading import load_tokenizer

    target = device(gpu)
    dtype = resolve_dtype(cfg, target)
    tokenizer = load_tokenizer(cfg.model)
    shape = model_shape(cfg, getattr(torch, dtype), len(tokenizer))
    stage, offload_opt, offload_params = zero_settings(cfg)
    batch = int(cfg.train.get("per_device_train_batch_size", DEFAULT_BATCH))
    plan = Plan(batch, gpus, stage, offload_opt, offload_params)
    return Inputs(cfg, shape, token_stats(cfg, tokenizer), dtype, target, plan)


def components(inputs: Inputs, plan: Plan | None = None, tokens: TokenStats | None = None) -> list[Component]:
    return memory_components(inputs.cfg, inputs.shape, inputs.dtype, tokens or inputs.tokens, plan or inputs.plan)


def local_device() -> Device | None:
    """The table entry of this machine's GPU, or None when it is not in the table (MFU then cannot be given)."""
    try:
        return device(torch.cuda.get_device_name())
    except ConfigError:
        return None


def budget_of(inputs: Inputs, gpu_mem: str | None) -> float | None:
    if gpu_mem:
        return parse_bytes(gpu_mem)
    return inputs.target.memory_bytes if inputs.target else None


def estimate_command(
    cfg: RunConfig, gpus: int = 1, gpu: str | None = None, gpu_mem: str | None = None, measure: int = 0,
    fit: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Print the estimate (and the measurement / fit when asked); returns the numbers for tests and scripts."""
    inputs = build_inputs(cfg, gpus, gpu)
    parts = components(inputs)
    peak = peak_bytes(parts)
    budget = budget_of(inputs, gpu_mem)
    result: dict[str, Any] = {"peak_bytes": peak, "components": {c.name: c.bytes for c in parts}}
    print("\n".join(render(inputs, parts, peak, budget)))
    timing = time_lines(inputs)
    result |= timing["numbers"]
    if measure:
        from lmforge.estimate.measure import measure_run

        measured = measure_run(cfg, measure)
        result["measured"] = dataclasses.asdict(measured)
        error = (peak - measured.peak_bytes) / measured.peak_bytes
        print(f"\nmeasured ({measure} real steps on {measured.device}): peak {human(measured.peak_bytes)} "
              f"(estimate {error:+.1%}), {measured.seconds_per_step:.3g} s/step, "
              f"{measured.tokens_per_step:,.0f} tokens/step")  # fmt: skip
        flops = timing["flops"].per_token * measured.tokens_per_step / measured.seconds_per_step
        local = local_device() if measured.device == "cuda" else None
        mfu = flops / local.peak_flops if local else None
        result["measured_flops_per_s"] = flops
        print(
            f"  achieved {flops / 1e12:.3g} TFLOP/s" + (f" = MFU {mfu:.2f} on {local.name}" if local and mfu else "")
        )
        if mfu:
            result["mfu"] = mfu
            timing = time_lines(inputs, mfu)
    print("\n".join(timing["lines"]))
    if fit:
        if budget is None:
            raise ConfigError("--fit needs a memory budget: --gpu-mem 24GB or a known --gpu")
        answer = fit_answer(inputs, fit, budget)
        result["fit"] = answer
    return result


def render(inputs: Inputs, parts: list[Component], peak: float, budget: float | None) -> list[str]:
    cfg, shape, tokens, plan = inputs.cfg, inputs.shape, inputs.tokens, inputs.plan
    share = 100 * shape.trainable_params / max(shape.total_params, 1)
    rows = plan.batch * (cfg.rl.num_generations if stage_spec(cfg.stage).is_online_rl else 1)
    accum = int(cfg.train.get("gradient_accumulation_steps", 1))
    lines = [
        f"lmforge estimate: {cfg.stage} / {cfg.method.name}, {shape.total_params:,} params "
        f"({shape.trainable_params:,} trainable, {share:.2f}%), {inputs.dtype}, batch {plan.batch} x accum {accum} "
        f"x {plan.gpus} GPU(s)" + (f", ZeRO-{plan.zero_stage}" if plan.zero_stage else ""),
        f"data: {tokens.rows:,} rows; tokens per micro-batch: peak {tokens.peak_tokens(rows):,} "
        f"({'batch x longest, padded' if tokens.padded else f'the {rows} longest rows'}), "
        f"mean {tokens.mean_tokens(rows):,.0f}",
        "memory per device:",
    ]
    width = max(len(c.name) for c in parts)
    for c in parts:
        lines.append(f"  {c.name:<{width}}  {c.phase:<8} {human(c.bytes):>10}   {c.formula}")
    phases = {p: sum(c.bytes for c in parts if c.phase == p) for p in PHASES}
    static = sum(c.bytes for c in parts if c.phase == "static")
    shown = ", ".join(f"{p} {human(v)}" for p, v in phases.items() if v)
    lines.append(f"  peak = static {human(static)} + max({shown}) = {human(peak)}")
    if budget:
        verdict = "fits" if peak <= budget else "DOES NOT FIT"
        lines.append(f"  budget {human(budget)} per device: {verdict} ({100 * peak / budget:.0f}%)")
    lines.append("  not included: CUDA context and allocator fragmentation (typically 0.5-2 GB per GPU)")
    return lines


def time_lines(inputs: Inputs, mfu: float | None = None) -> dict[str, Any]:
    cfg, shape, tokens, plan = inputs.cfg, inputs.shape, inputs.tokens, inputs.plan
    rows = plan.batch * (cfg.rl.num_generations if stage_spec(cfg.stage).is_online_rl else 1)
    accum = int(cfg.train.get("gradient_accumulation_steps", 1))
    mean_seq = sum(tokens.lengths) / len(tokens.lengths)
    flops = flops_per_token(cfg, shape, mean_seq)
    tokens_per_step = tokens.mean_tokens(rows) * accum * plan.gpus
    steps = _steps(cfg, tokens.rows, plan.batch * accum * plan.gpus)
    lines = [
        f"time: {flops.per_token:.3g} FLOP/token ({flops.formula}); {tokens_per_step:,.0f} tokens/step, "
        f"{steps:,} steps"
    ]
    numbers: dict[str, Any] = {"flops_per_token": flops.per_token, "tokens_per_step": tokens_per_step, "steps": steps}
    if inputs.target is not None:
        rate = mfu or DEFAULT_MFU
        seconds = step_seconds(tokens_per_step, flops, plan.gpus, inputs.target.peak_flops, rate)
        source = "measured" if mfu else "assumed; --measure on the device calibrates it"
        lines.append(
            f"  on {plan.gpus} x {inputs.target.name} ({inputs.target.peak_flops / 1e12:.0f} TFLOP/s peak, "
            f"MFU {rate:.2f} "
            f"{source}): {seconds:.3g} s/step, run {_duration(seconds * steps)}"
        )
        numbers |= {"seconds_per_step": seconds, "run_seconds": seconds * steps}
    else:
        lines.append("  give --gpu (e.g. h100) for time per step and for the run")
    return {"lines": lines, "numbers": numbers, "flops": flops}


def _steps(cfg: RunConfig, rows: int, per_step: int) -> int:
    if cfg.train.get("max_steps", -1) and int(cfg.train.get("max_steps", -1)) > 0:
        return int(cfg.train["max_steps"])
    epochs = float(cfg.train.get("num_train_epochs", 3.0))
    return max(1, int(-(-rows // per_step) * epochs))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def fit_answer(inputs: Inputs, what: str, budget: float) -> Any:
    from lmforge.estimate.memory_fit import fit_batch, fit_cutoff, fit_zero

    search = {"batch": fit_batch, "cutoff_len": fit_cutoff, "zero": fit_zero}
    if what not in search:
        raise ConfigError(f"--fit must be one of {', '.join(search)}, got {what!r}")
    answer, line = search[what](inputs, budget)
    print(f"\nfit ({what}, budget {human(budget)}): {line}")
    return answer
