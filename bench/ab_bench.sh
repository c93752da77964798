#!/usr/bin/env bash
# Before/after of two lmforge checkouts in one session, alternated A B A B (the machine is shared, so only
# ratios measured side by side mean anything): training tokens/s through the shared harness (the same
# `bench_candidate.sh` / `summarize.py` formula as run_bench.sh) and API req/s at 1/8/32 clients (api_bench.py).
#
#   bench/ab_bench.sh A_NAME=/path/to/a/src B_NAME=/path/to/b/src
#   ROUNDS=3 WORKLOADS="sft_lora:tiny" API=0 bench/ab_bench.sh before=/work/wt-before/src after=src
#
# Each variant runs the same python ($OUR_PY) with PYTHONPATH=<its src> (printed: lmforge.__file__), the same
# configs (this checkout's bench/configs) and the same models. Env: PEER_ROOT (/tmp/peers: models, runs),
# SHARED_BENCH, OUR_PY (/work/main/.venv/bin/python), ROUNDS (2), WORKLOADS ("sft_lora:tiny dpo_lora:tiny"),
# API (1), API_SIZES (tiny), QUIET_MAX_WAIT (0: do not wait for an idle machine; foreign_cpu_frac is recorded),
# OMP_NUM_THREADS (training threads; the harness default is all cores, 2 here; on a loaded machine 1 thread avoids
# OpenMP barrier stalls whenever another process holds a core, so wall and CPU time say more).
# Results: $OUT_DIR (default $PEER_ROOT/ab-<time>): runs.jsonl (harness lines, name <variant>_<workload>_<size>),
# api.jsonl (api_bench lines plus "variant"), losses.txt (per-step loss curves compared across variants).
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
cd "$REPO"  # the bench configs name their data relative to the repository root
export PEER_ROOT="${PEER_ROOT:-/tmp/peers}"
OUR_PY="${OUR_PY:-/work/main/.venv/bin/python}"
ROUNDS="${ROUNDS:-2}"
WORKLOADS="${WORKLOADS-sft_lora:tiny dpo_lora:tiny}"
export QUIET_MAX_WAIT="${QUIET_MAX_WAIT:-0}"
OUT_DIR="${OUT_DIR:-$PEER_ROOT/ab-$(date +%Y%m%d-%H%M%S)}"
HARNESS="$OUT_DIR/harness"
export RESULTS_JSONL="$OUT_DIR/runs.jsonl"
export PEAK_JSON="$SHARED_BENCH/results/machine_peak.json"  # MFU denominator of RESULTS.md
mkdir -p "$HARNESS"
cp -a "$SHARED_BENCH/." "$HARNESS/" && chmod -R u+w "$HARNESS"  # the harness writes next to itself
source "$HARNESS/common.sh"

declare -a NAMES SRCS
for v in "$@"; do NAMES+=("${v%%=*}"); SRCS+=("$(cd "${v#*=}" && pwd)"); done
[ "${#NAMES[@]}" -ge 2 ] || { echo "usage: $0 A=SRC B=SRC [C=SRC ...]" >&2; exit 2; }
for i in "${!NAMES[@]}"; do
  echo "${NAMES[$i]}: $(PYTHONPATH="${SRCS[$i]}" "$OUR_PY" -c 'import lmforge; print(lmforge.__file__)')" \
    "($(git -C "${SRCS[$i]}" rev-parse --short HEAD))"
done
echo "uptime before: $(uptime)"

kind_of() { case "$1" in dpo_*) echo "$1" ;; *lora*) echo lora ;; *) echo full ;; esac; }

for r in $(seq 1 "$ROUNDS"); do
  [ -e "$OUT_DIR/stop" ] && { echo "stop file: ending before round $r"; break; }  # touch it to end a long session
  echo "=== round $r: training ==="
  for w in $WORKLOADS; do
    IFS=: read -r wl size <<< "$w"
    for i in "${!NAMES[@]}"; do
      name="${NAMES[$i]}_${wl}_${size}" out="$RUNS_DIR/${NAMES[$i]}_${wl}_${size}-r$r-$$/out"
      PYTHONPATH="${SRCS[$i]}" MODEL_SIZE=$size MODEL_DIR="$MODELS_DIR/$size" \
        "$HARNESS/bench_candidate.sh" "$name" "$(kind_of "$wl")" "$out" -- \
        "$OUR_PY" -m lmforge train "$REPO/bench/configs/$wl.yaml" "train.output_dir=$out" \
        "model.name_or_path=$MODELS_DIR/$size" 2>&1 | grep -E "^BENCH_RESULT|failed|rc=|Error" | cut -c1-400
      echo "$name r$r $out" >> "$OUT_DIR/outs.txt"
    done
  done
  if [ "${API:-1}" = 1 ]; then
    echo "=== round $r: API ==="
    for i in "${!NAMES[@]}"; do
      (cd "$REPO/bench" && PYTHONPATH="${SRCS[$i]}" "$OUR_PY" api_bench.py --sizes ${API_SIZES:-tiny} \
        --concurrency 1 8 32 2>&1) | grep "^API_RESULT" \
        | sed "s/^API_RESULT {/API_RESULT {\"variant\": \"${NAMES[$i]}\", \"round\": $r, /" | tee -a "$OUT_DIR/api.txt"
    done
  fi
done
echo "uptime after: $(uptime)"
sed 's/^API_RESULT //' "$OUT_DIR/api.txt" > "$OUT_DIR/api.jsonl" 2>/dev/null

"$OUR_PY" - "$OUT_DIR/outs.txt" <<'EOF' | tee "$OUT_DIR/losses.txt"
"""Per-step loss curves of every run, grouped by workload: identical across variants and rounds (same seed)?"""
import json, sys
from collections import defaultdict
curves = defaultdict(dict)
for line in open(sys.argv[1]):
    name, rnd, out = line.split()
    variant, workload = name.split("_", 1)
    hist = json.load(open(f"{out}/trainer_state.json"))["log_history"]
    curves[workload][f"{variant} {rnd}"] = [h["loss"] for h in hist if "loss" in h]
for workload, runs in curves.items():
    ref_key, ref = next(iter(runs.items()))
    same = all(c == ref for c in runs.values())
    worst = max(max(abs(a - b) for a, b in zip(c, ref)) if len(c) == len(ref) else float("inf") for c in runs.values())
    print(f"{workload}: {len(runs)} runs, {len(ref)} logged steps, {ref[0]} -> {ref[-1]}, "
          f"{'all curves bit-identical' if same else f'DIFFER (max |delta| {worst:g})'}")
EOF
