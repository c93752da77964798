"""Every tuning method on the bench SFT workload: trainable parameters, peak memory, tokens/s, final eval loss.

    .venv/bin/python bench/methods_table.py [--model /tmp/peers/models/small] [--out /tmp/peers/methods]
        [--steps 30] [--only lora,qlora] [--markdown docs-table.md]

The workload is bench/configs/sft_lora.yaml (alpaca_en_demo, chatml, cutoff 512, batch 4, 30 steps, fp32 on CPU,
gradient checkpointing off), with 50 examples held out for the final eval loss; each method changes only the
`method:` keys (and, for the prompt methods, padded batches, which they need) plus the learning rate its method
usually wants (column lr). Each run is its own `lmforge train` process: peak RSS is that process's ru_maxrss,
tokens/s = tokens seen / train_runtime from trainer_state.json, process CPU s = user + system time of the whole
process (less sensitive to other jobs than tokens/s). The machine is shared, so absolute speeds vary; the load
average at the start of each run is recorded next to it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "bench" / "configs" / "sft_lora.yaml"
PADDED = ["data.padding_free=false"]
# name -> (learning rate, overrides of the LoRA workload)
METHODS: dict[str, tuple[float, list[str]]] = {
    "full": (1e-4, ["method.name=full"]),
    "freeze (last 2 layers)": (1e-4, ["method.name=freeze", "method.freeze_trainable_layers=2"]),
    "lora": (1e-4, []),
    "lora + dora": (1e-4, ["method.lora_use_dora=true"]),
    "lora + rslora": (1e-4, ["method.lora_use_rslora=true"]),
    "lora + pissa": (1e-4, ["method.lora_init=pissa"]),
    "lora + olora": (1e-4, ["method.lora_init=olora"]),
    "lora + lora+ (ratio 16)": (1e-4, ["method.loraplus_lr_ratio=16"]),
    "lora + neftune (alpha 5)": (1e-4, ["method.neftune_alpha=5"]),
    "qlora (nf4, double quant)": (1e-4, ["method.name=qlora"]),
    "qlora (int8)": (1e-4, ["method.name=qlora", "method.quant_bits=8"]),
    "loha": (1e-4, ["method.name=loha"]),
    "lokr": (1e-4, ["method.name=lokr"]),
    "adalora (8 -> 4)": (1e-4, ["method.name=adalora", "method.adalora_target_rank=4"]),
    "ia3": (3e-3, ["method.name=ia3"]),
    "vera": (1e-2, ["method.name=vera"]),
    "oft (block 16)": (1e-4, ["method.name=oft"]),
    "prompt_tuning (20 tokens)": (3e-2, ["method.name=prompt_tuning", *PADDED]),
    "p_tuning (20, mlp)": (1e-3, ["method.name=p_tuning", *PADDED]),
    "prefix_tuning (20)": (1e-2, ["method.name=prefix_tuning", *PADDED]),
    "full + galore (rank 128)": (
        1e-4,
        ["method.name=full", "train.optim=galore_adamw", "train.optim_target_modules=[mlp,self_attn]"],
    ),
}
COUNT = re.compile(r"trainable params: ([\d,]+) \|\| all params: ([\d,]+)")


def run_one(name: str, lr: float, overrides: list[str], model: str, out: Path, steps: int) -> dict:
    """One `lmforge train` process; returns its row of the table."""
    command = [
        str(REPO / ".venv" / "bin" / "lmforge"),
        "train",
        str(CONFIG),
        f"model.name_or_path={model}",
        f"train.output_dir={out}",
        f"train.max_steps={steps}",
        f"train.learning_rate={lr}",
        "train.overwrite_output_dir=true",
        "data.val_size=50",
        "data.overwrite_cache=false",
        *overrides,
    ]
    load = os.getloadavg()[0]
    start = time.time()
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS), not all children's maximum
    proc.returncode = os.waitstatus_to_exitcode(status)
    row = {"method": name, "lr": lr, "load_avg": round(load, 2), "wall_s": round(time.time() - start, 1)}
    if proc.returncode != 0:
        return {**row, "error": output.strip().splitlines()[-1][:300] if output.strip() else "failed"}
    cpu_s = round(usage.ru_utime + usage.ru_stime, 1)  # the whole process: load, data, train, eval, save
    return {**row, **_read_run(out, output), "peak_rss_mib": _peak_rss_mib(usage), "process_cpu_s": cpu_s}


def _peak_rss_mib(usage: os.struct_rusage) -> float:  # type: ignore[name-defined]
    return round(usage.ru_maxrss / 1024, 1)  # KiB on Linux


def _read_run(out: Path, output: str) -> dict:
    counts = COUNT.search(output)
    state = json.loads((out / "trainer_state.json").read_text())
    train = next(r for r in reversed(state["log_history"]) if "train_runtime" in r)
    evals = json.loads((out / "eval_results.json").read_text())
    return {
        "trainable": int(counts.group(1).replace(",", "")) if counts else None,
        "total": int(counts.group(2).replace(",", "")) if counts else None,
        "tokens_per_s": round(state["num_input_tokens_seen"] / train["train_runtime"], 1),
        "train_runtime_s": round(train["train_runtime"], 1),
        "eval_loss": round(evals["eval_loss"], 4),
    }


def markdown(rows: list[dict]) -> str:
    lines = [
        "| method | lr | trainable params | trainable % | peak RSS (MiB) | tokens/s | process CPU s | eval loss "
        "| load avg |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['method']} | {r['lr']:g} | failed: {r['error']} | | | | | | {r['load_avg']} |")
            continue
        share = 100 * r["trainable"] / r["total"] if r.get("total") else float("nan")
        lines.append(
            f"| {r['method']} | {r['lr']:g} | {r['trainable']:,} | {share:.3f} | {r['peak_rss_mib']:,} | "
            f"{r['tokens_per_s']:,} | {r['process_cpu_s']} | {r['eval_loss']:.4f} | {r['load_avg']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="/tmp/peers/models/small")
    parser.add_argument("--out", default="/tmp/peers/methods")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--only", help='method names (table keys) to run, separated by ";"')
    parser.add_argument("--markdown", help="also write the table to this file")
    args = parser.parse_args()
    chosen = {k: v for k, v in METHODS.items() if not args.only or k in args.only.split(";")}
    rows = []
    results = Path(args.out) / "methods.jsonl"
    results.parent.mkdir(parents=True, exist_ok=True)
    for index, (name, (lr, overrides)) in enumerate(chosen.items()):
        row = run_one(name, lr, overrides, args.model, Path(args.out) / f"run{index}", args.steps)
        print(json.dumps(row), flush=True)
        with results.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        rows.append(row)
    table = markdown(rows)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
