#!/usr/bin/env python
"""Planned vs one padded prefill on a multiple-choice scoring batch (in-process, one torch thread).

  python bench/prefill_bench.py MODEL_DIR [--items 8] [--rounds 2]

Builds `--items` items of 4 choices each as lm-eval scores them (a context of 150-250 random tokens, then a 2-8
token answer; one row per choice), runs `decoding.prefill` with `prompt_logprobs` on them once as planned
(`inference/prefill_plan.py`: each context computed once) and once as a single left-padded batch, alternating, and
prints the CPU seconds of each and the largest difference between the two runs' log-probabilities.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from lmforge.inference import decoding, prefill_plan
from lmforge.models.adapters import load_base_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model folder, e.g. /tmp/lmforge_api_bench/models/small")
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_base_model(args.model, torch.float32)
    rng = random.Random(0)
    vocab = model.config.vocab_size
    prompts = []
    for _ in range(args.items):
        context = [rng.randrange(10, vocab) for _ in range(rng.randrange(150, 250))]
        prompts += [context + [rng.randrange(10, vocab) for _ in range(rng.randrange(2, 8))] for _ in range(4)]
    planner = prefill_plan.plan
    times: dict[str, list[float]] = {"one batch": [], "planned": []}
    scores = {}
    for _ in range(args.rounds):
        for name in times:
            prefill_plan.plan = planner if name == "planned" else lambda p: [prefill_plan.Part(list(range(len(p))))]
            start = time.process_time()
            with torch.inference_mode():
                _, scores[name] = decoding.prefill(model, prompts, 0, [None] * len(prompts), [1] * len(prompts))
            times[name].append(round(time.process_time() - start, 2))
    prefill_plan.plan = planner
    diff = max(
        abs((a.logprob or 0.0) - (b.logprob or 0.0))
        for row_a, row_b in zip(scores["one batch"], scores["planned"], strict=True)
        for a, b in zip(row_a or [], row_b or [], strict=True)
    )
    print(f"{len(prompts)} rows: CPU s one batch {times['one batch']}, planned {times['planned']}; ", end="")
    print(f"max |log-probability difference| {diff:.2e}")


if __name__ == "__main__":
    main()
