#!/usr/bin/env python
"""EX throughput of `lmforge text2sql eval` over the 435 Spider dev-subset examples on synthesized databases.

  python bench/text2sql_bench.py [--data ../shared/data/text2sql/spider] [--workers 1,2] [--repeats 2]

Builds 3 synthetic databases per db_id (synth-db), then times evaluate() for: gold vs gold, gold vs a perturbed
prediction set (ASC<->DESC, > <-> <), and the perturbed set with 8 runaway predictions (recursive CTE, 1 s
timeout) that must not serialise the run. Runs alternate A B A B over the worker counts; prints one
`T2S_RESULT {json}` line per run with examples/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from lmforge.text2sql.evaluate import ExecSettings, evaluate
from lmforge.text2sql.examples import Prediction, read_gold
from lmforge.text2sql.spider_tables import load_tables
from lmforge.text2sql.synth_db import synthesize

RUNAWAY = "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) SELECT count(*) FROM n"


def perturb(sql: str) -> str:
    swaps = {"DESC": "ASC", "ASC": "DESC", ">": "<", "<": ">"}
    return " ".join(swaps.get(tok, tok) for tok in sql.split(" "))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/text2sql/spider"))
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    data = Path(args.data)
    schemas = load_tables(data / "tables_subset.json")
    gold = read_gold(data / "dev_subset_gold.sql")
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        report = synthesize(schemas, gold, tmp)
        print(
            f"synth-db: {report.databases} databases in {time.perf_counter() - t0:.2f} s, "
            f"gold failures {len(report.gold_failures)}, empty-everywhere {report.empty_results}"
        )
        sets = {
            "gold_vs_gold": [Prediction(g.query, g.where) for g in gold],
            "gold_vs_perturbed": [Prediction(perturb(g.query), g.where) for g in gold],
        }
        sets["perturbed_8_runaway"] = [
            Prediction(RUNAWAY, p.where) if i % 54 == 0 else p for i, p in enumerate(sets["gold_vs_perturbed"])
        ]
        for _ in range(args.repeats):
            for workers in (int(w) for w in args.workers.split(",")):
                for name, preds in sets.items():
                    t0 = time.perf_counter()
                    result = evaluate(preds, gold, schemas, tmp, ExecSettings(timeout_s=1.0), workers)
                    wall = time.perf_counter() - t0
                    line = {
                        "set": name,
                        "workers": workers,
                        "examples": len(gold),
                        "wall_s": round(wall, 3),
                        "examples_per_s": round(len(gold) / wall, 1),
                        "ex": result["metrics"]["ex"],
                        "em": result["metrics"]["em"],
                        "timeouts": result["outcomes"]["timeout"],
                    }
                    print("T2S_RESULT", json.dumps(line))


if __name__ == "__main__":
    main()
