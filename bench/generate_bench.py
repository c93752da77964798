#!/usr/bin/env python
"""Throughput of `lmforge generate self-instruct` against `lmforge serve` at generator.concurrency 1 vs 32.

  python bench/generate_bench.py [--size small] [--rounds 2] [--prompts 32] [--max-tokens 32] [--repeats 2]
      [--threads N]

The generator is the api_bench model (`lmforge init-model --size SIZE`) fine-tuned once, as the tests' generator
is, to answer the Self-Instruct prompts parseably (a random model only produces truncated noise that every filter
rejects); it is cached under --models-dir. One real `lmforge serve` process serves it (API key on, `--threads`
torch threads: by default every core, as serve runs by default); the same Self-Instruct config (greedy, fixed
seed, `--prompts` proposals per round, 3 in-context tasks) runs in this process with concurrency 1 and 32
alternately (A B A B ...), each into a fresh output folder. Greedy + per-request seeds make the runs write
identical records (checked), so the records-per-second ratio is the wall-time ratio of the same work. Prints one
`GENERATE_RESULT {json}` line per run and a summary; `machine_busy_frac` is the share of both cores busy during
the run (the machine may be shared with other work).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import yaml
from api_bench import KEY, ensure_model, free_port, start_server
from cpu_load import machine_busy_s

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
SEEDS = REPO / "examples/data/generate/seed_tasks.jsonl"


def ensure_generator(models_dir: Path, size: str) -> Path:
    """The bench model fine-tuned on the pipeline's prompts (tests/integration/generate_model.py), built once."""
    folder = models_dir / f"{size}-generator"
    if not (folder / "out" / "config.json").exists():
        import torch
        from tests.integration.generate_model import generator_rows, train_generator

        from lmforge.models.adapters import load_plain_tokenizer

        torch.set_num_threads(1)
        base = ensure_model(models_dir, size)
        train_generator(folder, base, generator_rows(load_plain_tokenizer(str(base))))
    return folder / "out"


def write_config(folder: Path, port: int, concurrency: int, args: argparse.Namespace) -> Path:
    raw = {
        "generator": {"base_url": f"http://127.0.0.1:{port}/v1", "model": "bench", "api_key_env": "BENCH_KEY"},
        "sampling": {"temperature": 0, "max_new_tokens": 2 * args.max_tokens},
        "answer_sampling": {"max_new_tokens": args.max_tokens},
        "output": {"dir": str(folder / "out")},
        "self_instruct": {
            "seed_tasks": str(SEEDS),
            "num_instructions": 100_000,
            "max_rounds": args.rounds,
            "prompts_per_round": args.prompts,
            "num_prompt_instructions": 3,
            "num_machine_instructions": 1,
        },
    }
    raw["generator"]["concurrency"] = concurrency
    (folder / "gen.yaml").write_text(yaml.safe_dump(raw))
    return folder / "gen.yaml"


def run_once(port: int, concurrency: int, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        config = write_config(folder, port, concurrency, args)
        from lmforge.cli import main as lmforge

        busy0, start = machine_busy_s(), time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            assert lmforge(["generate", "self-instruct", str(config)]) == 0
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
        "machine_busy_frac": round(busy / (wall * (os.cpu_count() or 1)), 2),
    }
    print("GENERATE_RESULT " + json.dumps(row), flush=True)
    return {**row, "_records": records}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="small", choices=["tiny", "small"])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=32, help="proposal prompts per round (default 32)")
    parser.add_argument(
        "--max-tokens", type=int, default=48, help="answer max_tokens; proposals get twice (default 48)"
    )
    parser.add_argument("--repeats", type=int, default=2, help="A B pairs (default 2)")
    parser.add_argument(
        "--threads",
        type=int,
        default=os.cpu_count() or 1,
        help="the server's torch threads (default: every core, as `lmforge serve` runs by default; 1 leaves a core to "
        "the client, steadier on a machine shared with other jobs)",
    )
    parser.add_argument("--models-dir", type=Path, default=Path("/tmp/lmforge_api_bench/models"))
    args = parser.parse_args()
    os.environ["BENCH_KEY"] = KEY
    model = ensure_generator(args.models_dir, args.size)
    port = free_port()
    server = start_server(model, port, threads=args.threads)
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
    ratios = [
        a["wall_s"] / b["wall_s"] for a, b in zip(rows[::2], rows[1::2], strict=True)
    ]  # same records: wall ratio
    print(
        f"accepted records/s: concurrency 1 {rate[1]:.3f}, concurrency 32 {rate[32]:.3f}; concurrency 32 / 1 per "
        f"A-B pair: {', '.join(f'{x:.2f}x' for x in ratios)} ({rows[0]['records']} identical records per run)"
    )


if __name__ == "__main__":
    main()
