"""Speed of the image experiments: end to end, vmapped against one after another, share of peak.

    python scripts/bench_images.py [--config configs/images_stability_digits.yaml]
                                   [--set KEY=VALUE ...] [--seq-configs 2] [--seq-generations 2]
                                   [--skip-sequential]

1. End to end: the config (default: experiment 1 of the images issue, stability on digits:
   5 real fractions x 4 seeds x 20 generations) through ``scl.simulate`` exactly as ``scl run``
   runs it (compile, generation 0, every generation, metrics; no output folder). Prints the wall
   time against the 15-minute target, the time of the first chunk (compile + generation 0 + its
   generations) and the steady seconds per generation of the whole sweep.
2. Vmapped against sequential: ``--seq-configs`` of the sweep's configurations (one seed of the
   first sweep points) each run alone for ``--seq-generations`` generations, end to end with its
   own compile, extrapolated to all C configurations; the vmapped figure is the same sweep's wall
   time up to the end of generation ``--seq-generations`` in step 1 (chunk boundaries: run
   with run.chunk_size dividing it). Ratio = sequential / vmapped.
3. Share of the matmul peak: the steady generations' network FLOPs (XLA's count of one forward
   pass per row, MLP or U-Net; training steps x batch x 3 forward passes, plus every sampling
   step of the n loop rows and the probe's rows, x 2 for the conditional and null predictions of
   classifier-free guidance) over their time, against the device's float32 ``jnp.dot`` peak
   measured here (a CPU) or the datasheet fp32 peak (scripts/bench_neural.py's table). The
   feature CNN and the metrics are not counted (a lower bound on the work done).
   Also printed: configuration-generations per second (the GPU script's figure).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


class ChunkClock:
    """Callback: wall time at the end of each chunk, as (last generation computed, seconds)."""

    def __init__(self):
        self.t0 = time.perf_counter()
        self.marks = []

    def __call__(self, event):
        self.marks.append((event.generations[1] - 1, time.perf_counter() - self.t0))


def run(cfg):
    import scl

    clock = ChunkClock()
    ds = scl.simulate(cfg, progress=False, callbacks=[clock])
    return ds, time.perf_counter() - clock.t0, clock.marks


def forward_flops(spec, dim: int, batch: int = 256) -> float:
    """XLA's FLOP count of one network forward pass per row (Dense and conv alike)."""
    from bench_neural import xla_flops

    params = jax.eval_shape(spec.init, jax.random.PRNGKey(0))
    z = jax.ShapeDtypeStruct((batch, dim), jnp.float32)
    t = jax.ShapeDtypeStruct((batch,), jnp.float32)
    if spec.num_classes:
        y = jax.ShapeDtypeStruct((batch,), jnp.int32)
        compiled = jax.jit(spec.predict).lower(params, z, t, y).compile()
    else:
        compiled = jax.jit(spec.predict).lower(params, z, t).compile()
    return xla_flops(compiled) / batch


def generation_flops(cfg) -> tuple[float, int]:
    """(network FLOPs of one steady generation of the whole sweep, configurations C): training
    steps x batch x 3 forward passes (forward + backward), plus every sampling step of the n loop
    rows and of the probe's rows (x 2 with classifier-free guidance: conditional and null)."""
    from scl.data import make_source
    from scl.engine import grid_of
    from scl.families.diffusion import diffusion_spec
    from scl.families.flow_matching import flow_matching_spec
    from scl.families.networks import image_shape_of
    from scl.families.neural import num_classes_of

    source = make_source(cfg.truth)
    make_spec = {"diffusion": diffusion_spec, "flow_matching": flow_matching_spec}[cfg.model.name]
    spec = make_spec(cfg.model, source.dim, num_classes_of(source), image_shape_of(source))
    forward = forward_flops(spec, source.dim)
    C = grid_of(cfg).inputs()[0].shape[0]
    guided = 2 if spec.num_classes else 1
    probe = cfg.metrics.samples if cfg.metrics.names else 0
    train = cfg.model.steps * cfg.model.batch_size * 3 * forward
    sample = (cfg.loop.n + probe) * cfg.model.sample_steps * guided * forward
    return float(C * (train + sample)), C


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", default="configs/images_stability_digits.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    ap.add_argument("--seq-configs", type=int, default=2, help="configurations timed one after another")
    ap.add_argument("--seq-generations", type=int, default=2)
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--target-s", type=float, default=900.0, help="end-to-end target (default 15 min)")
    args = ap.parse_args()

    from bench_neural import datasheet_peak, matmul_peak
    from scl.config import load_config
    from scl.devices import use_cpu_devices

    use_cpu_devices()                    # one XLA device per core, as scl run does
    cfg = load_config(args.config, [f"run.chunk_size={args.seq_generations}"] + args.set)
    device = jax.devices()[0]
    print(f"devices: {len(jax.devices())} x {device.device_kind} ({device.platform})")
    flops, C = generation_flops(cfg)
    G = cfg.loop.generations
    print(f"config: {args.config} {' '.join(args.set)}: {C} configurations x {G} generations")

    ds, total, marks = run(cfg)
    # steady: from the end of the first chunk after generation 0's (its compile is then paid)
    # to the end of the run; with only one such chunk, everything after generation 0
    first_gen, first_s = marks[1] if len(marks) > 2 else marks[0]
    steady = (marks[-1][1] - first_s) / max(G - first_gen, 1)
    verdict = "meets" if total <= args.target_s else "MISSES"
    print(f"end to end: {total:.0f} s ({verdict} the {args.target_s:.0f} s target); first chunk "
          f"(compiles + generations 0..{first_gen}) {first_s:.0f} s; steady {steady:.2f} s per "
          f"generation of all {C} configurations = {C / steady:.2f} configuration-generations/s")
    for name in list(ds.data_vars)[:3]:
        med = ds[name].median("seed")
        print(f"  {name}: generation 0 -> {G} medians " + ", ".join(
            f"{float(a):.3g}->{float(b):.3g}" for a, b in zip(med.isel(generation=0).values.ravel(),
                                                           med.isel(generation=G).values.ravel())))

    n = 3072 if device.platform == "cpu" else 8192
    peak = matmul_peak(n)
    table = datasheet_peak(device.device_kind) if device.platform != "cpu" else None
    ref = table[1] if table else peak
    rate = flops / steady
    print(f"network FLOPs (XLA count) per steady generation: {flops / 1e12:.3f} TFLOP -> {rate / 1e9:.1f} GFLOP/s; "
          f"{'datasheet fp32' if table else f'measured float32 {n}x{n} jnp.dot'} peak "
          f"{ref / 1e9:.1f} GFLOP/s: {100 * rate / ref:.1f}% of peak")

    if args.skip_sequential:
        return
    g = args.seq_generations
    vm = next(s for gen, s in marks if gen >= g)
    seq = []
    for i in range(args.seq_configs):
        data = {**cfg.to_dict(), "sweep": {}}
        one = load_config(data, [("seeds", 1), ("seed", cfg.seed + i), ("loop.generations", g),
                                 ("run.chunk_size", g)]
                          + [(path, values[i % len(values)]) for path, values in cfg.sweep])
        seq.append(run(one)[1])
        print(f"  sequential configuration {i}: {seq[-1]:.1f} s for generations 0..{g}")
    seq_total = sum(seq) / len(seq) * C
    print(f"generations 0..{g}: vmapped {vm:.0f} s for {C} configurations; one after another "
          f"{seq_total:.0f} s (mean of {len(seq)} x {C}); ratio {seq_total / vm:.2f}x")


if __name__ == "__main__":
    main()
