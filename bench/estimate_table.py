"""The docs/estimate.md table: `lmforge estimate` vs the measured peak of 3 real training steps on CPU.

    python bench/estimate_table.py --arch qwen2 --size tiny
    python bench/estimate_table.py --arch llama --size small

Uses the same runs as tests/integration/test_estimate_vs_measured.py (one process per run keeps each measurement
free of the previous run's garbage).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ONE_RUN = """
import json, sys, torch
torch.set_num_threads(1)
from pathlib import Path
from lmforge.config import load_config
from lmforge.estimate.estimate_command import build_inputs, components
from lmforge.estimate.measure import measure_run
from lmforge.estimate.memory import peak_bytes
from tests.integration.test_estimate_vs_measured import _config
stage, method, gc, model, folder = json.loads(sys.argv[1])
cfg = load_config(_config(Path(folder), Path(model), stage, method, gc))
estimate = peak_bytes(components(build_inputs(cfg, gpus=1, gpu=None)))
print(json.dumps({"estimate": estimate, "measured": measure_run(cfg, steps=3).peak_bytes}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="qwen2", choices=["llama", "qwen2"])
    parser.add_argument("--size", default="tiny", choices=["tiny", "small"])
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.integration.test_estimate_vs_measured import CASES

    from lmforge.models.init import init_model

    with tempfile.TemporaryDirectory() as scratch:
        model = Path(scratch) / "model"
        init_model(output=str(model), arch=args.arch, size=args.size, corpus=[], template="chatml", seed=0)
        print("| model | stage | method | checkpointing | estimate MB | measured MB | error |")
        print("|---|---|---|---|---|---|---|")
        for stage, method in CASES:
            for gc in (False, True):
                folder = Path(scratch) / f"{stage}-{method['name']}-{gc}"
                folder.mkdir()
                spec = json.dumps([stage, method, gc, str(model), str(folder)])
                done = subprocess.run([sys.executable, "-c", ONE_RUN, spec], cwd=REPO, capture_output=True, text=True)
                if done.returncode:
                    sys.exit(done.stderr[-2000:])
                numbers = json.loads(done.stdout.strip().splitlines()[-1])
                est, meas = numbers["estimate"], numbers["measured"]
                print(f"| {args.arch} {args.size} | {stage} | {method['name']} | {'on' if gc else 'off'} | "
                      f"{est / 1e6:.1f} | {meas / 1e6:.1f} | {(est - meas) / meas:+.1%} |", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
