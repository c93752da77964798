#!/usr/bin/env python
"""Time lmforge's data pipeline (tokenizer load + template + read + tokenise + mask, no cache) like the peer's
`peer_llamafactory_preprocess.py`, so the two examples/s figures can be divided.

  python bench/preprocess_bench.py --model MODEL_DIR [--stages sft,pt] [--repeats 5] [--out results.jsonl]

Each stage runs REPEATS times in one process with data.overwrite_cache=true; prints one
`PREPROC_RESULT {json}` line per stage (same keys as the peer's, name `ours_preprocess_<stage>`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from cpu_load import machine_busy_s, own_cpu_s

HERE = Path(__file__).resolve().parent
CONFIGS = {"sft": HERE / "configs" / "sft_lora.yaml", "pt": HERE / "configs" / "pt_full.yaml"}


def time_stage(stage: str, model: str, repeats: int) -> dict:
    from lmforge.config.config_loading import load_config
    from lmforge.data.pipeline import build_datasets
    from lmforge.models.model_loading import load_tokenizer
    from lmforge.templates import get_template

    times = []
    with tempfile.TemporaryDirectory() as tmp:
        overrides = [f"model.name_or_path={model}", f"train.output_dir={tmp}/out", f"data.cache_dir={tmp}/cache"]
        cfg = load_config(CONFIGS[stage], overrides)
        busy0, own0, wall0 = machine_busy_s(), own_cpu_s(), time.perf_counter()
        for _ in range(repeats):
            t0 = time.perf_counter()
            tokenizer = load_tokenizer(cfg.model)
            template = get_template(cfg.data.template, tokenizer) if stage == "sft" else None
            bundle = build_datasets(cfg, tokenizer, template)
            times.append(time.perf_counter() - t0)
        foreign = max(0.0, machine_busy_s() - busy0 - (own_cpu_s() - own0))
        foreign_frac = foreign / ((time.perf_counter() - wall0) * (os.cpu_count() or 1))
        rows, tokens = len(bundle.train), sum(len(x) for x in bundle.train.data.column("input_ids").to_pylist())
    n_in = sum(count_records(d["path"]) for d in cfg.data.datasets)
    med = statistics.median(times)
    return {
        "name": f"ours_preprocess_{stage}",
        "dataset": ",".join(Path(d["path"]).stem for d in cfg.data.datasets),
        "repeats": repeats,
        "num_workers": 1,
        "output_rows": rows,
        "output_tokens": tokens,
        "first_s": round(times[0], 3),
        "min_s": round(min(times), 3),
        "median_s": round(med, 3),
        "input_examples": n_in,
        "examples_per_s_median": round(n_in / med, 1),
        "examples_per_s_best": round(n_in / min(times), 1),
        "tokens_per_s_median": round(tokens / med, 1),
        "foreign_cpu_frac": round(foreign_frac, 3),
    }


def count_records(path: str) -> int:
    """Raw records, counted as the peer script does (JSON list items, or non-empty lines)."""
    with open(path, encoding="utf-8") as f:
        if path.endswith(".json"):
            return len(json.load(f))
        return sum(1 for line in f if line.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--stages", default="sft,pt")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", help="append the json lines here")
    a = ap.parse_args()
    for stage in a.stages.split(","):
        res = time_stage(stage, a.model, a.repeats)
        print("PREPROC_RESULT " + json.dumps(res), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    main()
