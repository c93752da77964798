#!/usr/bin/env bash
# lmforge vs LLaMA-Factory, side by side in one session, through the shared peer harness
# (../shared/bench beside the repo: bench_candidate.sh, peer_llamafactory.sh, summarize.py, report.py).
#
#   bench/run_bench.sh                       # all workloads, REPEATS rounds, then ratios
#   REPEATS=3 WORKLOADS="sft_lora:tiny" bench/run_bench.sh
#
# Env: PEER_ROOT (/tmp/peers: peer venv, models, runs, results), SHARED_BENCH (REPO/../shared/bench),
#      LMFORGE (the lmforge executable, default .venv/bin/lmforge), REPEATS (2),
#      WORKLOADS ("sft_lora:tiny sft_lora:small sft_full:tiny pt_full:tiny sft_lora:small:gc dpo_lora:tiny"; a third field
#      `gc` runs ours with gradient checkpointing on, against the same peer), PREPROCESS (1), HELP_TIMING (1),
#      API (1: the serving workload, bench/api_bench.py, req/s and latency at 1/8/32 clients; results/api.jsonl).
# The harness runs from a private copy under $PEER_ROOT/harness: its scripts write next to themselves
# (versions.json, summary.md) and the shared folder must stay untouched. Results: $PEER_ROOT/results/.
set -uo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SHARED_BENCH="${SHARED_BENCH:-$REPO/../shared/bench}"
cd "$REPO"  # the bench configs name their data relative to the repository root
export PEER_ROOT="${PEER_ROOT:-/tmp/peers}"
HARNESS="$PEER_ROOT/harness"
RESULTS="$PEER_ROOT/results"
export RESULTS_JSONL="${RESULTS_JSONL:-$RESULTS/runs.jsonl}"
export PEAK_JSON="${PEAK_JSON:-$RESULTS/machine_peak.json}"
PREPROC_JSONL="$RESULTS/preprocess.jsonl"
LMFORGE="${LMFORGE:-$REPO/.venv/bin/lmforge}"
OUR_PY="${OUR_PY:-$REPO/.venv/bin/python}"
REPEATS="${REPEATS:-2}"
WORKLOADS="${WORKLOADS-sft_lora:tiny sft_lora:small sft_full:tiny pt_full:tiny sft_lora:small:gc dpo_lora:tiny}"

mkdir -p "$HARNESS" "$RESULTS"
cp -a "$SHARED_BENCH/." "$HARNESS/" && chmod -R u+w "$HARNESS"
rm -f "$HARNESS/results/runs.jsonl" "$HARNESS/results/preprocess.jsonl" "$HARNESS/results/summary.md"
[ -f "$PEAK_JSON" ] || cp "$SHARED_BENCH/results/machine_peak.json" "$PEAK_JSON"  # MFU denominator of RESULTS.md
source "$HARNESS/common.sh"

[ -x "$PEER_VENV/bin/llamafactory-cli" ] || SETUP_TRL_LATEST=0 "$HARNESS/setup_peers.sh" || exit 1
for size in tiny small; do
  MODEL_SIZE=$size MODEL_DIR="$MODELS_DIR/$size" bash -c "source '$HARNESS/common.sh'; ensure_model" || exit 1
done

kind_of() { case "$1" in dpo_*) echo "$1" ;; *lora*) echo lora ;; *) echo full ;; esac; }  # dpo_*: FLOPs add the reference

run_ours() {  # run_ours WORKLOAD SIZE [gc]   (gc: gradient checkpointing on, name ours_<wl>_gc_<size>)
  local wl="$1" size="$2" gc="${3:-}" name out
  name="ours_${wl}${gc:+_gc}_${size}"
  out="$RUNS_DIR/$name-$(date +%Y%m%d-%H%M%S)-$$/out"
  MODEL_SIZE=$size MODEL_DIR="$MODELS_DIR/$size" "$HARNESS/bench_candidate.sh" "$name" "$(kind_of "$wl")" "$out" -- \
    "$LMFORGE" train "$REPO/bench/configs/$wl.yaml" "train.output_dir=$out" "model.name_or_path=$MODELS_DIR/$size" \
    ${gc:+model.gradient_checkpointing=true}
}

run_peer() {  # run_peer WORKLOAD SIZE
  MODEL_SIZE=$2 MODEL_DIR="$MODELS_DIR/$2" "$HARNESS/peer_llamafactory.sh" "$1"
}

filter() { grep -E "^BENCH_RESULT|failed|rc=|wait_quiet|Error" | cut -c1-400; }

for r in $(seq 1 "$REPEATS"); do
  echo "=== round $r ==="
  for w in $WORKLOADS; do
    IFS=: read -r wl size gc <<< "$w"
    if [ $((r % 2)) = 1 ]; then  # alternate who goes first
      run_peer "$wl" "$size" 2>&1 | filter; run_ours "$wl" "$size" "$gc" 2>&1 | filter
    else
      run_ours "$wl" "$size" "$gc" 2>&1 | filter; run_peer "$wl" "$size" 2>&1 | filter
    fi
  done
done

if [ "${PREPROCESS:-1}" = 1 ]; then
  echo "=== preprocessing (no cache, 5 repeats in one process) ==="
  wait_quiet
  "$PY" "$HARNESS/peer_llamafactory_preprocess.py" --model "$MODELS_DIR/tiny" --data "$HARNESS/data" \
    --stages sft,pt --repeats 5 --out "$PREPROC_JSONL" 2>&1 | grep PREPROC_RESULT | cut -c1-300
  wait_quiet
  "$OUR_PY" "$REPO/bench/preprocess_bench.py" --model "$MODELS_DIR/tiny" --stages sft,pt --repeats 5 \
    --out "$PREPROC_JSONL" 2>&1 | grep PREPROC_RESULT | cut -c1-300
fi

if [ "${HELP_TIMING:-1}" = 1 ]; then
  echo "=== lmforge --help (5 runs) ==="
  wait_quiet
  "$OUR_PY" - "$LMFORGE" "$RESULTS/help_time.jsonl" <<'EOF'
import json, statistics, subprocess, sys, time
times = []
for _ in range(5):
    t0 = time.perf_counter()
    subprocess.run([sys.argv[1], "--help"], stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - t0)
res = {"name": "lmforge_help", "runs": times, "median_s": round(statistics.median(times), 3), "max_s": round(max(times), 3)}
print("HELP_RESULT " + json.dumps(res))
open(sys.argv[2], "a").write(json.dumps(res) + "\n")
EOF
fi

echo "=== summary ($RESULTS_JSONL) ==="
"$SUMMARY_PY" "$HARNESS/report.py" --runs "$RESULTS_JSONL" --preprocess "$PREPROC_JSONL" --out "$RESULTS/summary.md"
for w in $WORKLOADS; do
  IFS=: read -r wl size gc <<< "$w"
  echo "--- ratio ours_${wl}${gc:+_gc}_${size} / lf_${wl}_${size} ---"
  "$SUMMARY_PY" "$HARNESS/report.py" --runs "$RESULTS_JSONL" --ratio "ours_${wl}${gc:+_gc}_${size}" "lf_${wl}_${size}"
done
"$SUMMARY_PY" "$REPO/bench/ratios.py" --runs "$RESULTS_JSONL" --preprocess "$PREPROC_JSONL" --help-times "$RESULTS/help_time.jsonl"

if [ "${API:-1}" = 1 ]; then
  echo "=== API serving: lmforge serve at 1, 8, 32 concurrent clients (tiny, small) ==="
  wait_quiet
  "$OUR_PY" "$REPO/bench/api_bench.py" --models-dir "$MODELS_DIR" --out "$RESULTS/api.jsonl" 2>&1 \
    | grep -E "^API_RESULT|^\|" | cut -c1-400
fi
