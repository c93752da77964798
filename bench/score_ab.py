#!/usr/bin/env python
"""A/B of `lmforge serve` scoring throughput between checkouts: wall req/s and CPU milliseconds per request.

  python bench/score_ab.py --variants before=/path/to/old/src after=../src ["nowait=../src=--max-wait-ms 0.001"]
      [--sizes tiny small] [--concurrency 1 32] [--rounds 2]

Each variant is NAME=SRC[=EXTRA SERVE ARGS]; variants alternate (A B A B ...) for --rounds rounds, each with a fresh
server running the scoring workload of `api_bench.py --workload score`. CPU time per request is less sensitive than
wall time to other processes on a shared machine: `server_ms` is the server process's CPU per request, split into the
batching worker thread (`worker_ms`: the model) and the rest (`loop_ms`: HTTP, JSON, tokenizing, logprob
formatting) when `py-spy` is installed (it names the worker thread's id); `client_ms` is the bench client's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import api_bench
from cpu_load import machine_busy_s, own_cpu_s


def worker_thread_id(pid: int) -> str | None:
    """The OS id of the server's batching thread (Python does not name OS threads; py-spy reads Python's names)."""
    spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if spy is None:
        return None
    dump = subprocess.run([spy, "dump", "-p", str(pid)], capture_output=True, text=True).stdout
    found = re.search(r'Thread (\d+) \(\w+\): "lmforge-batch-worker"', dump)
    return found.group(1) if found else None


def thread_cpu_s(pid: int, worker: str | None) -> tuple[float, float]:
    """(worker thread CPU s, all other threads' CPU s) of process `pid`."""
    tick, split = os.sysconf("SC_CLK_TCK"), [0.0, 0.0]
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        split[task.name != worker] += (int(fields[11]) + int(fields[12])) / tick
    return split[0], split[1]


def measure(variant: str, size: str, model: Path, levels: list[int], requests: int) -> list[dict]:
    name, src, *extra = variant.split("=", 2)
    port = api_bench.free_port()
    server = api_bench.start_server(model, port, 1, extra[0].split() if extra else [], str(Path(src).resolve()))
    rows = []
    try:
        asyncio.run(api_bench.run_level(port, 4, 8, 0, score=True))  # warm-up
        worker = worker_thread_id(server.pid)
        for clients in levels:
            n = requests or max(64, 4 * clients)
            busy0, own0, (w0, l0), wall0 = machine_busy_s(), own_cpu_s(), thread_cpu_s(server.pid, worker), time.time()
            level = asyncio.run(api_bench.run_level(port, clients, n, 0, score=True))
            wall, (w1, l1) = time.time() - wall0, thread_cpu_s(server.pid, worker)
            client = own_cpu_s() - own0
            foreign = (machine_busy_s() - busy0 - (w1 - w0) - (l1 - l0) - client) / (wall * (os.cpu_count() or 1))
            row = {
                "variant": name,
                "model": size,
                "clients": clients,
                "requests": n,
                "req_s": level["requests_per_s"],
                "latency_p50_s": level["latency_p50_s"],
                "server_ms": round(1000 * (w1 - w0 + l1 - l0) / n, 2),
                **(
                    {"worker_ms": round(1000 * (w1 - w0) / n, 2), "loop_ms": round(1000 * (l1 - l0) / n, 2)}
                    if worker
                    else {}
                ),
                "client_ms": round(1000 * client / n, 2),
                "foreign_cpu_frac": round(max(0.0, foreign), 3),
            }
            print("SCORE_AB " + json.dumps(row), flush=True)
            rows.append(row)
    finally:
        server.terminate()
        server.wait(30)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", nargs="+", required=True, help="NAME=SRC[=EXTRA SERVE ARGS], alternated")
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], choices=["tiny", "small"])
    parser.add_argument("--concurrency", nargs="+", type=int, default=[1, 32])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--requests", type=int, default=0, help="requests per level (default max(64, 4 x clients))")
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/lmforge_api_bench/models"))
    args = parser.parse_args()
    print("uptime before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(), flush=True)
    for size in args.sizes:
        model = api_bench.ensure_model(args.models_dir, size)
        for _ in range(args.rounds):
            for variant in args.variants:
                measure(variant, size, model, args.concurrency, args.requests)
    print("uptime after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


if __name__ == "__main__":
    main()
