#!/usr/bin/env python
"""CPU time of one batched decode step of the serve/chat/generate loop (`inference/decoding.py`), one torch thread.

  python bench/decode_step_bench.py MODEL_DIR [--rows 32] [--prompt 150] [--steps 60]

Prefills `--rows` random prompts of about `--prompt` tokens, then times `--steps` greedy `decoding.step`s and prints
the CPU milliseconds per step. Run it from two checkouts alternately (PYTHONPATH=<src>) to compare them.
"""

from __future__ import annotations

import argparse
import time

import torch

from lmforge.inference import decoding
from lmforge.models.adapters import load_base_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model folder, e.g. /tmp/lmforge_api_bench/models/small")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=150)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_base_model(args.model, torch.float32)
    generator = torch.Generator().manual_seed(0)
    prompts = [
        torch.randint(10, model.config.vocab_size, (args.prompt - row % 7,), generator=generator).tolist()
        for row in range(args.rows)
    ]
    with torch.inference_mode():
        state, _ = decoding.prefill(model, prompts, 0, [None] * args.rows, [None] * args.rows)
        start = time.process_time()
        for _ in range(args.steps):
            decoding.step(model, state, state.logits.argmax(-1))
        cpu = time.process_time() - start
    print(f"{args.rows} rows, ~{args.prompt}-token prompts: {1000 * cpu / args.steps:.2f} CPU ms per decode step")


if __name__ == "__main__":
    main()
