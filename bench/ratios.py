#!/usr/bin/env python3
"""The performance targets of lmforge vs LLaMA-Factory as one markdown table (stdlib only).

Reads the harness's runs.jsonl / preprocess.jsonl (same filtering as report.py: rc 0, foreign_cpu_frac <= 0.10)
and the `lmforge --help` timings written by run_bench.sh; medians per benchmark name.
  python3 bench/ratios.py --runs RUNS.jsonl --preprocess PRE.jsonl --help-times HELP.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

MAX_FOREIGN = 0.10
TOKENS_TARGET = {"sft_lora": 1.5, "sft_full": 1.3, "pt_full": 1.1}  # minimum tokens/s ratio to LLaMA-Factory
WALL_TARGET = 0.7
PREPROC_TARGET = 2.0
HELP_TARGET_S = 1.0


def load(path: str) -> list[dict]:
    if not path or not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def medians(rows: list[dict]) -> dict[str, dict]:
    """name -> {metric: median over clean runs, 'n': clean runs, 'noisy': dropped runs}."""
    out: dict[str, dict] = {}
    for name in dict.fromkeys(r["name"] for r in rows):
        rs = [r for r in rows if r["name"] == name]
        ok = [r for r in rs if r.get("rc") == 0 and (r.get("foreign_cpu_frac") or 0) <= MAX_FOREIGN]
        m = {"n": len(ok), "noisy": len(rs) - len(ok)}
        for key in ("tokens_per_s", "wall_s", "train_runtime_s", "mfu_pct", "tokens", "last_loss"):
            vals = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
            m[key] = statistics.median(vals) if vals else None
        rss = [r["peak_rss_mib"] for r in ok if r.get("peak_rss_mib")]
        m["peak_rss_mib"] = statistics.median(rss) if rss else None  # as report.py --ratio; max varies ~3%
        m["peak_rss_max"] = max(rss) if rss else None
        out[name] = m
    return out


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def verdict(value: float | None, target: float, higher: bool) -> str:
    if value is None:
        return "n/a"
    return "ok" if (value >= target if higher else value <= target) else "MISSED"


def fmt(x: float | None, nd: int = 2) -> str:
    return "-" if x is None else f"{x:,.{nd}f}"


def training_rows(med: dict[str, dict]) -> list[str]:
    out = [
        "| workload | ours tok/s | LF tok/s | ratio (target) | ours MFU % | LF MFU % | peak RSS ours/LF MiB (median) "
        "| wall ours/LF s | wall ratio (<= 0.7) | runs ours/LF (noisy dropped) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in med:
        if not name.startswith("ours_"):
            continue
        peer = "lf_" + name[len("ours_") :].replace("_gc_", "_")  # ours_<wl>_gc_<size>: checkpointing on
        o, p = med[name], med.get(peer, {})
        wl = peer[len("lf_") :].rsplit("_", 1)[0]
        tr, wr = ratio(o["tokens_per_s"], p.get("tokens_per_s")), ratio(o["wall_s"], p.get("wall_s"))
        target = TOKENS_TARGET.get(wl, 1.0)
        rss_ok = verdict(ratio(o["peak_rss_mib"], p.get("peak_rss_mib")), 1.0, higher=False)
        out.append(
            f"| {name[5:]} | {fmt(o['tokens_per_s'], 0)} | {fmt(p.get('tokens_per_s'), 0)} | "
            f"**{fmt(tr)}** ({target}: {verdict(tr, target, True)}) | "
            f"{fmt(o['mfu_pct'], 1)} | {fmt(p.get('mfu_pct'), 1)} | "
            f"{fmt(o['peak_rss_mib'], 0)}/{fmt(p.get('peak_rss_mib'), 0)} ({rss_ok}) | "
            f"{fmt(o['wall_s'], 1)}/{fmt(p.get('wall_s'), 1)} | **{fmt(wr)}** ({verdict(wr, WALL_TARGET, False)}) | "
            f"{o['n']}/{p.get('n', 0)} ({o['noisy']}/{p.get('noisy', 0)}) |"
        )
    return out


def preprocess_rows(pre: list[dict]) -> list[str]:
    out = ["| preprocessing | ours ex/s | LF ex/s | ratio (>= 2 for sft) |", "|---|---|---|---|"]
    pre = [r for r in pre if (r.get("foreign_cpu_frac") or 0) <= MAX_FOREIGN]  # the peer's lines carry none
    for stage in ("sft", "pt"):
        ours = [r for r in pre if r["name"] == f"ours_preprocess_{stage}"]
        lf = [r for r in pre if r["name"] == f"lf_preprocess_{stage}"]
        if not ours or not lf:
            continue
        o = statistics.median(r["examples_per_s_median"] for r in ours)
        p = statistics.median(r["examples_per_s_median"] for r in lf)
        target = f" ({verdict(o / p, PREPROC_TARGET, True)})" if stage == "sft" else ""
        out.append(f"| {stage} ({ours[0]['dataset']}) | {o:,.0f} | {p:,.0f} | **{o / p:.2f}**{target} |")
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", required=True)
    ap.add_argument("--preprocess")
    ap.add_argument("--help-times")
    a = ap.parse_args()
    lines = training_rows(medians(load(a.runs)))
    pre = load(a.preprocess)
    if pre:
        lines += ["", *preprocess_rows(pre)]
    helps = load(a.help_times)
    if helps:
        med = statistics.median(h["median_s"] for h in helps)
        lines += [
            "",
            f"`lmforge --help`: median {med:.3f} s (< {HELP_TARGET_S} s: {verdict(med, HELP_TARGET_S, False)})",
        ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
