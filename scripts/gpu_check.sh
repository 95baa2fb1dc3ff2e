#!/usr/bin/env bash
# One prepared accelerator check: device, engine benchmark, neural benchmark (fp32 and bf16,
# vmapped vs sequential, share of the datasheet peak), the largest Gaussian sweep that fits.
#
#   scripts/gpu_check.sh [--cpu | --quick | --full] [OUT_DIR]     (default OUT_DIR: gpu_check_out)
#
# --full: accelerator sizes (the default when JAX's backend is gpu or tpu); every step has its own
#         `timeout`, and the limits add up to under 8 minutes (450 s + 5 s grace per step).
# --quick: small sizes on whatever backend JAX picks (the default when it picks the CPU).
# --cpu:  JAX_PLATFORMS=cpu and the small sizes.
# Each step's output goes to the terminal and to OUT_DIR/<step>.log; the closing summary table
# (step, status, seconds, then each benchmark's figures) is printed and written to
# OUT_DIR/summary.txt. A failed or timed-out step is recorded and the script goes on.
# Run from anywhere; it runs in the repository root with PYTHONPATH set to it (python: $PYTHON
# or `python`).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
MODE=auto
OUT=gpu_check_out
for arg in "$@"; do
  case "$arg" in
    --cpu) MODE=cpu; export JAX_PLATFORMS=cpu ;;
    --quick) MODE=quick ;;
    --full) MODE=full ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "gpu_check.sh: unknown option $arg (use --cpu, --quick or --full)" >&2; exit 2 ;;
    *) OUT=$arg ;;
  esac
done
mkdir -p "$OUT"
RESULTS="$OUT/results.tsv"; STEPS="$OUT/steps.tsv"; SUMMARY="$OUT/summary.txt"
: > "$RESULTS"; : > "$STEPS"
BACKEND=$(timeout 60 "$PY" -c "import jax; print(jax.default_backend())" 2>/dev/null | tail -1)
BACKEND=${BACKEND:-unknown}
if [ "$MODE" = auto ]; then
  if [ "$BACKEND" = gpu ] || [ "$BACKEND" = tpu ]; then MODE=full; else MODE=quick; fi
fi
echo "gpu_check: backend $BACKEND, mode $MODE, output in $OUT/"
T0=$(date +%s)

# step NAME LIMIT_S COMMAND...: run under `timeout`, tee to OUT/NAME.log, record status and seconds
step() {
  local name=$1 limit=$2; shift 2
  echo; echo "=== $name (limit ${limit}s): $*"
  local start=$(date +%s)
  timeout --kill-after=5 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]} status=ok
  if [ "$rc" = 124 ] || [ "$rc" = 137 ]; then status="timeout"; elif [ "$rc" != 0 ]; then status="failed (rc $rc)"; fi
  printf '%s\t%s\t%s\n' "$name" "$status" "$(( $(date +%s) - start ))" >> "$STEPS"
}

DEVICE_PY='import jax; d = jax.devices()
print("jax", jax.__version__, "| backend", jax.default_backend(), "|", len(d), "device(s):", d[0].device_kind)
for x in d: print("  ", x)'
if [ "$MODE" = full ]; then
  step device 15 bash -c "$PY -c '$DEVICE_PY' && (command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,clocks.max.sm --format=csv || true)"
  step engine 75 "$PY" scripts/bench_engine.py --numpy-configs 32 --loop-configs 64 --summary "$RESULTS"
  NEURAL=(--configs 64 --seq-configs 4 --widths 64,1024 --depth 2 --families flow,diffusion,flow_matching
          --flops-per-run 2e12 --max-steps 500 --repeats 3 --summary "$RESULTS")
  step neural_fp32 135 "$PY" scripts/bench_neural.py "${NEURAL[@]}" --precisions fp32
  step neural_bf16 135 "$PY" scripts/bench_neural.py "${NEURAL[@]}" --precisions bf16
  step largest_sweep 90 env XLA_PYTHON_CLIENT_MEM_FRACTION=0.9 "$PY" scripts/bench_largest_sweep.py \
    --start 65536 --cap 16777216 --generations 50 --max-seconds 20 --budget-seconds 80 --summary "$RESULTS"
else
  step device 60 "$PY" -c "$DEVICE_PY"
  step engine 120 "$PY" scripts/bench_engine.py --generations 50 --numpy-configs 16 --loop-configs 16 \
    --skip-compile --summary "$RESULTS"
  NEURAL=(--configs 4 --widths 16 --depth 2 --families diffusion --max-steps 20 --repeats 1
          --peak-size 1024 --summary "$RESULTS")
  step neural_fp32 135 "$PY" scripts/bench_neural.py "${NEURAL[@]}" --precisions fp32
  step neural_bf16 135 "$PY" scripts/bench_neural.py "${NEURAL[@]}" --precisions bf16
  step largest_sweep 120 "$PY" scripts/bench_largest_sweep.py --start 1024 --cap 2048 --generations 10 \
    --max-seconds 10 --summary "$RESULTS"
fi

{
  echo "gpu_check summary: backend $BACKEND, mode $MODE, $(date -u '+%Y-%m-%d %H:%M UTC'), total $(( $(date +%s) - T0 )) s"
  grep -m1 -h "backend\|device" "$OUT/device.log" 2>/dev/null | head -1
  printf '%-16s %-16s %8s\n' step status seconds
  while IFS=$'\t' read -r name status secs; do printf '%-16s %-16s %8s\n' "$name" "$status" "$secs"; done < "$STEPS"
  echo "results:"
  while IFS=$'\t' read -r what figure; do printf '  %-34s %s\n' "$what" "$figure"; done < "$RESULTS"
} > "$SUMMARY"
echo; cat "$SUMMARY"
