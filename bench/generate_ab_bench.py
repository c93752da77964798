#!/usr/bin/env python
"""Before/after for `lmforge generate`: generate_bench's Self-Instruct run from two src trees, A B A B, one server.

  python bench/generate_ab_bench.py A_SRC B_SRC [--rounds 1] [--repeats 2]
  # e.g. A = the commit before a change: git archive BASE src | tar -x -C /tmp/a; then /tmp/a/src vs src

Each run is a child process importing lmforge from its src (wall time measured inside it, imports excluded) against
one `lmforge serve` of the bench's fine-tuned tiny generator (served by the current checkout), at generator.concurrency
1 and 32, alternating A and B. Prints each run's GENERATE_RESULT row with the load average, whether every run wrote
the same records (checked: only wall time may differ), and per side the concurrency 32 / 1 ratio per pair.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from api_bench import KEY, free_port, start_server

BENCH = Path(__file__).resolve().parent
CHILD = """
import argparse, json, sys
sys.path.insert(0, {bench!r})
import generate_bench
row = generate_bench.run_once({port}, {concurrency}, argparse.Namespace(rounds={rounds}, prompts=32, max_tokens=48))
print("RECORDS " + json.dumps(row["_records"]))
"""


def run_side(src: str, port: int, concurrency: int, rounds: int) -> tuple[dict, str]:
    code = CHILD.format(bench=str(BENCH), port=port, concurrency=concurrency, rounds=rounds)
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{BENCH.parent}"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, cwd=BENCH)
    if out.returncode:
        raise SystemExit(out.stderr[-3000:])
    lines = out.stdout.splitlines()
    row = next(json.loads(line.split(" ", 1)[1]) for line in lines if line.startswith("GENERATE_RESULT"))
    return row, next(line for line in lines if line.startswith("RECORDS"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("a", help="src folder of the baseline (A)")
    parser.add_argument("b", help="src folder of the change (B)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="A B rounds (default 2)")
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/lmforge_api_bench/models"))
    args = parser.parse_args()
    os.environ["BENCH_KEY"] = KEY
    from generate_bench import ensure_generator

    port = free_port()
    server = start_server(ensure_generator(args.models_dir, "tiny"), port, threads=1)
    rows, records = [], set()
    try:
        for _ in range(args.repeats):
            for side, src in (("A", args.a), ("B", args.b)):
                for concurrency in (1, 32):
                    row, written = run_side(src, port, concurrency, args.rounds)
                    rows.append({**row, "side": side})
                    records.add(written)
                    print(side, json.dumps(row), "load", os.getloadavg(), flush=True)
    finally:
        server.terminate()
        server.wait(30)
    print("identical records in every run:", len(records) == 1)
    for side in "AB":
        walls = {c: [r["wall_s"] for r in rows if r["side"] == side and r["concurrency"] == c] for c in (1, 32)}
        ratios = [round(one / many, 2) for one, many in zip(walls[1], walls[32], strict=True)]
        print(f"{side}: wall c1 {walls[1]}, c32 {walls[32]}, ratio per pair {ratios}")


if __name__ == "__main__":
    main()
