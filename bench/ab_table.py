#!/usr/bin/env python3
"""Markdown tables of an `ab_bench.sh` session: per-round values, medians and the ratio B/A (stdlib only).

  python3 bench/ab_table.py OUT_DIR [--variants before after]

Training: tokens/s as the harness computes it (num_input_tokens_seen / train_runtime), with each run's
foreign_cpu_frac (share of the 2 CPUs other processes used during the run) and its own CPU seconds; API: req/s per
client level. No run is dropped: on a loaded machine every run is noisy, so the rounds are shown side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()] if path.exists() else []


def cell(values: list[float], foreign: list[float], nd: int) -> str:
    return " / ".join(f"{v:,.{nd}f} ({f:.2f})" for v, f in zip(values, foreign, strict=True))


def pairs(after: list[float], before: list[float]) -> str:
    """Round-by-round ratios: each round's two runs ran back to back, under the most similar load."""
    return ", ".join(f"{x / y:.2f}" for x, y in zip(after, before, strict=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--variants", nargs=2, default=["before", "after"], metavar=("A", "B"))
    args = parser.parse_args()
    a, b = args.variants
    runs = lines(args.out_dir / "runs.jsonl")
    print(
        f"| workload | variant | tokens/s per round (foreign CPU) | median tok/s | CPU s (user+sys) median | "
        f"wall s median | peak RSS MiB median | {b}/{a} (per round) |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for workload in dict.fromkeys(r["name"].split("_", 1)[1] for r in runs):
        med, prev = {}, []
        for v in (a, b):
            rs = [r for r in runs if r["name"] == f"{v}_{workload}" and r.get("rc") == 0]
            tps = [r["tokens_per_s"] for r in rs]
            med[v] = statistics.median(tps) if tps else None
            cpu = statistics.median(r["user_s"] + r["sys_s"] for r in rs) if rs else 0
            ratio = f"**{med[b] / med[a]:.3f}** ({pairs(tps, prev)})" if v == b and med[a] and med[b] else ""
            prev = tps
            print(
                f"| {workload} | {v} | {cell(tps, [r['foreign_cpu_frac'] for r in rs], 0)} | {med[v]:,.0f} | "
                f"{cpu:.1f} | {statistics.median(r['wall_s'] for r in rs):.1f} | "
                f"{statistics.median(r['peak_rss_mib'] for r in rs):,.0f} | {ratio} |"
            )
    api = lines(args.out_dir / "api.jsonl")
    if not api:
        return
    print(f"\n| model | clients | variant | req/s per round (foreign CPU) | median req/s | p50 s median | {b}/{a} |")
    print("|---|---|---|---|---|---|---|")
    for model, clients in dict.fromkeys((r["model"], r["clients"]) for r in api):
        med, prev = {}, []
        for v in (a, b):
            rs = [r for r in api if r["variant"] == v and r["model"] == model and r["clients"] == clients]
            rps = [r["requests_per_s"] for r in rs]
            med[v] = statistics.median(rps)
            ratio = f"**{med[b] / med[a]:.3f}** ({pairs(rps, prev)})" if v == b else ""
            prev = rps
            print(
                f"| {model} | {clients} | {v} | {cell(rps, [r['foreign_cpu_frac'] for r in rs], 2)} | "
                f"{med[v]:.2f} | {statistics.median(r['latency_p50_s'] for r in rs):.3f} | {ratio} |"
            )


if __name__ == "__main__":
    main()
