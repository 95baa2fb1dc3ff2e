"""Throughput of the neural families: vmapped sweep versus the same configurations one by one.

    PYTHONPATH=. python scripts/bench_neural.py [--configs 16] [--widths 16,64,256] [--precisions fp32,bf16]

1. Measures the device's dense matmul peak (a large float32 ``jnp.dot``; FLOP/s = 2 n^3 / time).
2. For each family, network width and ``model.matmul_precision``: trains ``--configs``
   configurations (distinct keys and learning rates) for a fixed number of Adam steps on
   minibatches of 256 rows drawn from a weighted buffer, (a) as one ``jit(vmap(train))`` and (b)
   the same jitted single-configuration ``train`` called once per configuration in a Python loop
   (``--seq-configs``: time that many, extrapolate to all). Prints optimiser steps x
   configurations per second for both, their ratio, and the FLOP/s of the vmapped sweep.
   FLOPs: XLA's own count (``compiled.cost_analysis()["flops"]``) of one vmapped training step
   (forward, backward, Adam update; every op, the spline arithmetic included), times the steps;
   ``xla/mm`` is its ratio to the matmul-only count (2 in out per Dense layer per example, x3 for
   forward + backward), a check on both.
3. Share of peak: the sweep's FLOP/s over the device's peak for that precision, from the
   datasheet table ``PEAKS`` (dense, no sparsity; TFLOP/s):

       device kind        bf16    fp32 (non-tensor)   tf32
       H100 SXM / H200     989     67                  494
       H100 PCIe           756     51                  378
       H100 NVL            835     60                  418
       A100                312     19.5                156
       L40S / L40          362 / 181   91.6 / 90.5     183 / 90.5
       L4                  121     30.3                 60
       TPU v4 / v5e / v5p / v6e: 275 / 197 / 459 / 918 bf16 (fp32 matmuls run as bf16 passes)

   On a device not in the table (a CPU) the peak is the measured float32 ``jnp.dot`` of step 1,
   for both precisions. JAX's default float32 matmul on an Ampere or Hopper GPU runs on TF32
   tensor cores (jax docs, "Matmul precision"), so an fp32 share can pass 100% of the
   non-tensor fp32 peak; the share of the TF32 peak is printed beside it.

Device-agnostic: runs on whatever ``jax.devices()`` are (CPU, GPU, TPU); the vmapped sweep is
sharded over all of them as ``scl`` does, the sequential loop runs on the first.
By default a CPU host is split into one device per core, as ``scl run`` does for a neural sweep;
``--cpu-devices 1`` times one device.
"""
from __future__ import annotations

import argparse
import functools
import time

import jax
import jax.numpy as jnp
import numpy as np

from scl.config import Config
from scl.data import make_source
from scl.devices import use_cpu_devices
from scl.engine import shard_configs
from scl.families.diffusion import diffusion_spec
from scl.families.flow import flow_spec
from scl.families.flow_matching import flow_matching_spec
from scl.families.networks import matmul_flops
from scl.families.neural import OPTIMISER, standardisation, train, with_hyperparams

# device_kind substring (first match wins) -> peak TFLOP/s (bf16, fp32 non-tensor, tf32), dense
PEAKS = [("H100 PCIe", (756.0, 51.0, 378.0)), ("H100 NVL", (835.0, 60.0, 418.0)),
         ("H100", (989.0, 67.0, 494.0)), ("H200", (989.0, 67.0, 494.0)), ("A100", (312.0, 19.5, 156.0)),
         ("L40S", (362.0, 91.6, 183.0)), ("L40", (181.0, 90.5, 90.5)), ("L4", (121.0, 30.3, 60.0)),
         ("TPU v4", (275.0, 275.0, None)), ("TPU v5 lite", (197.0, 197.0, None)),
         ("TPU v5e", (197.0, 197.0, None)), ("TPU v5", (459.0, 459.0, None)),
         ("TPU v6", (918.0, 918.0, None))]


def datasheet_peak(device_kind: str):
    """(bf16, fp32, tf32) peak FLOP/s of a device kind from PEAKS, or None if it is not listed."""
    for name, peaks in PEAKS:
        if name.lower() in device_kind.lower():
            return tuple(None if p is None else p * 1e12 for p in peaks)
    return None


def xla_flops(compiled) -> float:
    """FLOPs XLA counts for a compiled program (its cost analysis; a dict, or a list of one)."""
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan")))

SPECS = {"flow": (flow_spec, {"layers": 4}),
         "flow_spline": (flow_spec, {"family": "flow", "coupling": "spline", "layers": 4}),
         "diffusion": (diffusion_spec, {}), "flow_matching": (flow_matching_spec, {})}
BATCH = 256


def best_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_peak(n: int, repeats: int = 8) -> float:
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot)
    jax.block_until_ready(dot(a, b))
    return 2 * n ** 3 / best_time(lambda: dot(a, b), repeats)


def make_spec_of(family: str, width: int, depth: int, precision: str):
    make_spec, extra = SPECS[family]
    cfg = Config.from_dict(dict(truth={"kind": "eight_gaussians"}, metrics={"names": ["sliced_w2"]},
                                model={"family": extra.get("family", family), "width": width, "depth": depth,
                                       "matmul_precision": precision,
                                       **{k: v for k, v in extra.items() if k != "family"}}))
    return make_spec(cfg.model, 2), cfg


def step_flops(spec, z, configs: int) -> float:
    """XLA's FLOP count of one vmapped Adam step (minibatch draw, loss, gradient, update) over
    ``configs`` configurations, compiled on one device (so the count is the whole sweep's)."""
    count = z.shape[0]

    def one(params, opt_state, key, lr):
        k_rows, k_loss = jax.random.split(key)
        idx = jax.random.randint(k_rows, (BATCH,), 0, count)
        opt_state = with_hyperparams(opt_state, {"learning_rate": lr, "grad_clip": jnp.float32(1.0)})
        loss, grads = jax.value_and_grad(spec.loss)(params, k_loss, z[idx])
        updates, opt_state = OPTIMISER.update(grads, opt_state, params)
        return jax.tree_util.tree_map(jnp.add, params, updates), opt_state, loss

    params = jax.eval_shape(spec.init, jax.random.PRNGKey(0))
    opt_state = jax.eval_shape(OPTIMISER.init, params)
    batched = lambda t: jax.tree_util.tree_map(
        lambda a: jax.ShapeDtypeStruct((configs,) + a.shape, a.dtype), t)
    keys = jax.ShapeDtypeStruct((configs, 2), jnp.uint32)
    lrs = jax.ShapeDtypeStruct((configs,), jnp.float32)
    compiled = jax.jit(jax.vmap(one)).lower(batched(params), batched(opt_state), keys, lrs).compile()
    return xla_flops(compiled)


def bench(family: str, width: int, depth: int, steps: int, configs: int, repeats: int,
          precision: str = "fp32", seq_configs: int | None = None):
    """(vmapped steps x configs / s, sequential steps x configs / s, XLA FLOP/s of the vmapped
    sweep, XLA / matmul-only FLOP ratio)."""
    spec, cfg = make_spec_of(family, width, depth, precision)
    x = make_source(cfg.truth).sample(jax.random.PRNGKey(0), 1000)
    w = jnp.ones(1000)
    shift, scale = standardisation(x, w)
    z = (x - shift) / scale

    def train_one(key, lr):
        params = spec.init(jax.random.PRNGKey(7))
        knobs = {"learning_rate": lr, "grad_clip": jnp.float32(1.0)}
        return train(spec, key, params, OPTIMISER.init(params), z, w, knobs, steps, BATCH)[0]

    keys = jax.random.split(jax.random.PRNGKey(1), configs)
    lrs = jnp.geomspace(1e-4, 1e-2, configs).astype(jnp.float32)
    (keys_sharded, lrs_sharded), _ = shard_configs((keys, lrs), configs)   # over every device, as scl does
    single = jax.jit(train_one)
    swept = jax.jit(jax.vmap(train_one))
    jax.block_until_ready(single(keys[0], lrs[0]))
    jax.block_until_ready(swept(keys_sharded, lrs_sharded))
    t_vmap = best_time(lambda: swept(keys_sharded, lrs_sharded), repeats)
    seq = min(seq_configs or configs, configs)
    t_seq = best_time(lambda: [single(keys[i], lrs[i]) for i in range(seq)], repeats) * configs / seq
    flops = step_flops(spec, z, configs) * steps
    matmul = matmul_flops(jax.eval_shape(spec.init, jax.random.PRNGKey(7))) * BATCH * 3 * steps * configs
    return steps * configs / t_vmap, steps * configs / t_seq, flops / t_vmap, flops / matmul


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=int, default=16)
    ap.add_argument("--seq-configs", type=int, default=None,
                    help="time the sequential loop on this many configurations, extrapolate to --configs")
    ap.add_argument("--widths", default="16,64,256")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--families", default="flow,flow_spline,diffusion,flow_matching")
    ap.add_argument("--precisions", default="fp32", help="model.matmul_precision values, e.g. fp32,bf16")
    ap.add_argument("--flops-per-run", type=float, default=1e10,
                    help="steps per timed run are chosen to make about this many FLOPs")
    ap.add_argument("--max-steps", type=int, default=500, help="at most this many steps per timed run")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-devices", type=int, default=None, help="split the CPU into N XLA devices (default: one per core)")
    ap.add_argument("--peak-size", type=int, default=None,
                    help="n of the n x n float32 matmul that measures the peak (default 3072 on CPU, 8192 else)")
    ap.add_argument("--summary", default=None, help="append one tab-separated line per result to this file")
    args = ap.parse_args()
    use_cpu_devices(args.cpu_devices)       # before jax computes anything (default: one per core, as scl run)
    device = jax.devices()[0]
    n = args.peak_size or (3072 if device.platform == "cpu" else 8192)
    peak = matmul_peak(n)
    table = datasheet_peak(device.device_kind) if device.platform != "cpu" else None
    rows = []
    print(f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s)")
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s (float32 {n}x{n} jnp.dot; re-measured at the end)")
    if table:
        print("datasheet peak: " + ", ".join(f"{k} {v / 1e12:g} TFLOP/s" for k, v in
                                              zip(("bf16", "fp32", "tf32"), table) if v))
    else:
        print("datasheet peak: device not in PEAKS; shares are of the measured float32 matmul peak")
    print(f"{args.configs} configurations, batch {BATCH}, depth {args.depth}")
    print(f"{'family':<14} {'width':>5} {'prec':>4} {'steps':>5} {'vmap st*cfg/s':>14} {'seq st*cfg/s':>13} "
          f"{'ratio':>6} {'GFLOP/s':>9} {'xla/mm':>6} {'% peak':>7}")
    for family in args.families.split(","):
        for width in map(int, args.widths.split(",")):
            for precision in args.precisions.split(","):
                probe, _ = make_spec_of(family, width, args.depth, precision)
                per_step = matmul_flops(jax.eval_shape(probe.init, jax.random.PRNGKey(0))) * BATCH * 3 * args.configs
                steps = int(np.clip(args.flops_per_run / per_step, 20, args.max_steps))
                v, s, f, ratio = bench(family, width, args.depth, steps, args.configs, args.repeats,
                                       precision, args.seq_configs)
                ref = (table[0] if precision == "bf16" else table[1]) if table else peak
                rows.append((family, width, precision, v, s, f, ratio))
                tf32 = (f"  ({100 * f / table[2]:.1f}% of tf32)" if table and table[2] and precision == "fp32"
                        else "")
                print(f"{family:<14} {width:>5} {precision:>4} {steps:>5} {v:>14.0f} {s:>13.0f} {v / s:>6.2f} "
                      f"{f / 1e9:>9.1f} {ratio:>6.2f} {100 * f / ref:>6.2f}%{tf32}", flush=True)
                if args.summary:            # one line per result as it comes (a timeout keeps the rest)
                    with open(args.summary, "a") as out:
                        out.write(f"neural {family} w{width} {precision}\t{v:.0f} st*cfg/s vmap, x{v / s:.1f} vs "
                                  f"seq, {f / 1e9:.1f} GFLOP/s = {100 * f / ref:.2f}% of "
                                  f"{f'datasheet {precision}' if table else 'measured fp32 matmul'} peak\n")
    # A busy machine depresses a single peak measurement: take the best of before and after.
    peak = max(peak, matmul_peak(n))
    print(f"matmul peak (best of start and end): {peak / 1e9:.1f} GFLOP/s; % of it:")
    for family, width, precision, *_, f, _ in rows:
        print(f"  {family:<14} width {width:>5} {precision}: {100 * f / peak:5.1f}%")


if __name__ == "__main__":
    main()
