"""Throughput of the neural families: vmapped sweep versus the same configurations one by one.

    PYTHONPATH=. python scripts/bench_neural.py [--configs 16] [--widths 16,64,256]

1. Measures the device's dense matmul peak (a large float32 ``jnp.dot``; FLOP/s = 2 n^3 / time).
2. For each family and network width: trains ``--configs`` configurations (distinct keys and
   learning rates) for a fixed number of Adam steps on minibatches of 256 rows drawn from a
   weighted buffer, (a) as one ``jit(vmap(train))`` and (b) the same jitted single-configuration
   ``train`` called once per configuration in a Python loop. Prints optimiser steps x configurations
   per second for both, their ratio, and the achieved matmul FLOP/s of the vmapped sweep as a share
   of the measured peak. FLOPs counted: 2 in out per Dense layer per example, x3 for forward +
   backward (the flow's log-density passes through every coupling network once; the spline
   flow's elementwise spline arithmetic is not counted).

Device-agnostic: runs on whatever ``jax.devices()`` are (CPU, GPU, TPU); the vmapped sweep is
sharded over all of them as ``scl`` does, the sequential loop runs on the first.
By default a CPU host is split into one device per core, as ``scl run`` does for a neural sweep;
``--cpu-devices 1`` times one device.
"""
from __future__ import annotations

import argparse
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
from scl.families.neural import OPTIMISER, standardisation, train

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


def bench(family: str, width: int, depth: int, steps: int, configs: int, repeats: int):
    make_spec, extra = SPECS[family]
    cfg = Config.from_dict(dict(truth={"kind": "eight_gaussians"}, metrics={"names": ["sliced_w2"]},
                                model={"family": family, "width": width, "depth": depth, **extra}))
    spec = make_spec(cfg.model, 2)
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
    t_seq = best_time(lambda: [single(keys[i], lrs[i]) for i in range(configs)], repeats)
    flops = matmul_flops(spec.init(jax.random.PRNGKey(7))) * BATCH * 3 * steps * configs
    return steps * configs / t_vmap, steps * configs / t_seq, flops / t_vmap


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--configs", type=int, default=16)
    ap.add_argument("--widths", default="16,64,256")
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--families", default="flow,flow_spline,diffusion,flow_matching")
    ap.add_argument("--flops-per-run", type=float, default=1e10,
                    help="steps per timed run are chosen to make about this many FLOPs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cpu-devices", type=int, default=None, help="split the CPU into N XLA devices (default: one per core)")
    args = ap.parse_args()
    use_cpu_devices(args.cpu_devices)       # before jax computes anything (default: one per core, as scl run)
    device = jax.devices()[0]
    n = 3072 if device.platform == "cpu" else 8192
    peak = matmul_peak(n)
    rows = []
    print(f"device: {device.platform} ({device.device_kind}), {jax.device_count()} device(s)")
    print(f"matmul peak: {peak / 1e9:.1f} GFLOP/s (float32 {n}x{n} jnp.dot; re-measured at the end)")
    print(f"{args.configs} configurations, batch {BATCH}, depth {args.depth}")
    print(f"{'family':<14} {'width':>5} {'steps':>5} {'vmap st*cfg/s':>14} {'seq st*cfg/s':>13} "
          f"{'ratio':>6} {'GFLOP/s':>8} {'% peak':>7}")
    for family in args.families.split(","):
        for width in map(int, args.widths.split(",")):
            make_spec, extra = SPECS[family]
            probe = make_spec(Config.from_dict(dict(
                truth={"kind": "eight_gaussians"}, metrics={"names": ["sliced_w2"]},
                model={"family": family, "width": width, "depth": args.depth, **extra})).model, 2)
            per_step = matmul_flops(probe.init(jax.random.PRNGKey(0))) * BATCH * 3 * args.configs
            steps = int(np.clip(args.flops_per_run / per_step, 20, 500))
            v, s, f = bench(family, width, args.depth, steps, args.configs, args.repeats)
            rows.append((family, width, f))
            print(f"{family:<14} {width:>5} {steps:>5} {v:>14.0f} {s:>13.0f} {v / s:>6.2f} "
                  f"{f / 1e9:>8.1f} {100 * f / peak:>6.1f}%", flush=True)
    # A busy machine depresses a single peak measurement: take the best of before and after.
    peak = max(peak, matmul_peak(n))
    print(f"matmul peak (best of start and end): {peak / 1e9:.1f} GFLOP/s; % of it:")
    for family, width, f in rows:
        print(f"  {family:<14} width {width:>5}: {100 * f / peak:5.1f}%")


if __name__ == "__main__":
    main()
