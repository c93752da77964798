#!/usr/bin/env python
"""Throughput of `lmforge generate self-instruct` against `lmforge serve` at generator.concurrency 1 vs 32.

  python bench/generate_bench.py [--size small] [--rounds 2] [--prompts 32] [--max-tokens 32] [--repeats 2]

One real `lmforge serve` process (the api_bench model from `lmforge init-model --size SIZE`, API key on, 1 torch
thread); the same Self-Instruct config (greedy, fixed seed, `prompts_per_round` proposals per round) runs with
concurrency 1 and 32 alternately (A B A B ...), each into a fresh output folder. Greedy + per-request seeds make the
two runs write identical records (checked), so the records-per-second ratio is the wall-time ratio of the same work.
The model is randomly initialised: its records are nonsense that happens to pass the filters; what is measured is
how fast the pipeline turns requests into records. Prints one `GENERATE_RESULT {json}` line per run and a summary;
`foreign_cpu_frac` is the share of the machine's CPU other processes used meanwhile (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from api_bench import KEY, ensure_model, free_port, start_server
from cpu_load import machine_busy_s, own_cpu_s

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "examples/data/generate/seed_tasks.jsonl"


def write_config(folder: Path, port: int, concurrency: int, args: argparse.Namespace) -> Path:
    raw = {
        "generator": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "bench", "api_key_env": "BENCH_KEY"},
        "sampling": {"temperature": 0, "max_new_tokens": args.max_tokens},
        "answer_sampling": {"max_new_tokens": args.max_tokens},
        "output": {"dir": str(folder / "out")},
        "self_instruct": {
            "seed_tasks": str(SEEDS),
            "num_instructions": 100_000,
            "max_rounds": args.rounds,
            "prompts_per_round": args.prompts,
        },
    }
    raw["generator"]["concurrency"] = concurrency
    (folder / "gen.yaml").write_text(yaml.safe_dump(raw))
    return folder / "gen.yaml"


def run_once(port: int, concurrency: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, port, concurrency, args)
        env = {"BENCH_KEY": KEY, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
        busy0, own0 = machine_busy_s(), own_cpu_s()
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "lmforge", "generate", "self-instruct", str(config)],
            check=True,
            env={**env, "PYTHONPATH": str(REPO / "src")},
            capture_output=True,
        )
        wall = time.perf_counter() - start
        report = json.loads((folder / "out/report.json").read_text())
        records = (folder / "out/self_instruct.jsonl").read_text()
    busy = machine_busy_s() - busy0
    requests = report["requests"]["sent"]
    row = {
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "requests": requests,
        "records": report["records"],
        "records_per_s": round(report["records"] / wall, 3),
        "requests_per_s": round(requests / wall, 3),
        "foreign_cpu_frac": round(max(0.0, busy - (own_cpu_s() - own0)) / max(busy, 1e-9), 2),
    }
    print("GENERATE_RESULT " + json.dumps(row), flush=True)
    return {**row, "_records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=32, help="proposal prompts per round (default 32)")
    parser.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default 32)")
    parser.add_argument("--repeats", type=int, default=2, help="A B pairs (default 2)")
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/lmforge_api_bench/models"))
    args = parser.parse_args()
    model = ensure_model(args.models_dir, args.size)
    port = free_port()
    server = start_server(model, port, threads=1)
    rows: list[dict] = []
    try:
        for _ in range(args.repeats):
            rows += [run_once(port, 1, args), run_once(port, 32, args)]
    finally:
        server.terminate()
        server.wait(30)
    if len({r.pop("_records") for r in rows}) != 1:
        raise SystemExit("concurrency changed the records: the runs are not comparable")
    rate = {c: statistics.median(r["records_per_s"] for r in rows if r["concurrency"] == c) for c in (1, 32)}
    ratios = [b["records_per_s"] / a["records_per_s"] for a, b in zip(rows[::2], rows[1::2], strict=True)]
    print(
        f"records/s: concurrency 1 {rate[1]:.3f}, concurrency 32 {rate[32]:.3f}; ratio per A-B pair "
        f"{', '.join(f'{x:.2f}' for x in ratios)} (records per run: {rows[0]['records']}, identical)"
    )


if __name__ == "__main__":
    main()
