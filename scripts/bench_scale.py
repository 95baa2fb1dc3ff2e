"""Scale on one host: 10^6 configurations x 1,000 generations of the Gaussian family in one call.

    python scripts/bench_scale.py            # 16 real fractions x 62,500 seeds = 10^6 configs, G = 1000
    python scripts/bench_scale.py --quick    # 16 x 1,024 seeds = 16,384 configs, G = 100

Grid: truth N(0, [[1, .5], [.5, 1]]) in d = 2, Gaussian MLE family (exact sufficient-statistics
draws, scl.moments), regime ``fresh`` with n = 100, ``loop.real_fraction`` in linspace(0, 1, 16),
metric ``w2``. The engine's compiled program (scl.engine.build_program, the one ``scl run``
uses) runs over configuration batches (``--batch`` configurations, sharded over the host's XLA
devices) x generation chunks (``--chunk`` generations), so memory does not grow with either.

What is kept: the per-generation w2 of all configurations would be 10^6 x 1001 x 4 bytes = 4 GB
(8 GB once copied into a Dataset), so this keeps, per real fraction and generation, the mean and
standard deviation over seeds (running sums in float64: [16, 1001] each), and the final
generation's w2 of every configuration ([10^6] float32, 4 MB); nothing of size configurations x
generations. ``scl run`` on this grid would keep all of it (``scl.budget`` counts it).

Prints configurations x generations per second (compilation excluded: the first chunk of the first
batch, which compiles both programs, is timed apart and includes that chunk's run), peak memory (resource.getrusage ru_maxrss) and the load average (the machine
may be shared). Checks the result against theory: with real_fraction 1 every generation is fitted
on n fresh real rows, so E[w2] at the last generation equals generation 0's.

Measured (2-core CPU, 2 XLA devices, jax 0.10.2; the machine shared with other jobs):
    full run (defaults, batches of 15,625 configurations, chunks of 100 generations): 10^9
    configuration-generations in 2624 s = 0.394 M/s on average (first chunk incl. compilation
    91.8 s), the load average falling from 16 to 2 during the run (about 0.7 M/s over its last
    28 % at load 2-5); peak memory (ru_maxrss) 0.64 GiB. Check: real_fraction 1, mean w2 at
    generation 1000 0.1719 vs 0.1727 at generation 0 (-2.2 standard errors); real_fraction 0:
    0.1727 -> 1.8797.
    --quick, load 8.5: 1.64e6 in 2.5 s after an 8.4 s first chunk = 0.624 M/s, 0.45 GiB.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np


def config(seeds: int, generations: int, fractions: int = 16, chunk: int = 100):
    import scl

    return scl.Config.from_dict({
        "name": "scale", "seeds": seeds, "seed": 0,
        "truth": {"kind": "gaussian", "dim": 2, "cov": [[1.0, 0.5], [0.5, 1.0]]},
        "model": {"family": "gaussian"},
        "loop": {"generations": generations, "n": 100, "regime": "fresh", "real_fraction": 0.0},
        "metrics": {"names": ["w2"]},
        "sweep": {"loop.real_fraction": [float(f) for f in np.linspace(0, 1, fractions)]},
        "run": {"chunk_size": chunk, "progress": False},
    })


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20      # KiB on Linux


def run_scale(cfg, batch: int, log=print):
    """Run every configuration of ``cfg`` in batches of ``batch`` and generation chunks.
    Returns (summary dict, seconds after the first chunk, seconds of the first chunk (both
    compilations + its run), configuration-generations run after the first chunk)."""
    import jax
    import jax.numpy as jnp

    from scl.engine import build_program, flat_inputs, shard_configs

    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    C, G, L, S = keys.shape[0], program.generations, program.chunk_size, cfg.seeds
    F = C // S
    total = np.zeros((F, G + 1))
    squares = np.zeros((F, G + 1))
    final = np.full(C, np.nan, np.float32)
    compile_s, first_work, t_start = 0.0, 0, time.perf_counter()
    for b0 in range(0, C, batch):
        t_batch = time.perf_counter()
        part = jax.tree_util.tree_map(lambda a: a[b0:b0 + batch], (keys, knobs))
        B = part[0].shape[0]
        (k, kn), padded = shard_configs(part, B)
        point = (b0 + np.arange(B)) // S                      # real-fraction index of each config
        points = [(f, point == f) for f in np.unique(point)]

        def add(w2, t0):                                      # w2 [l, B]: generations t0 .. t0 + l - 1
            w2 = w2.astype(np.float64)
            for f, sel in points:
                total[f, t0:t0 + len(w2)] += w2[:, sel].sum(1)
                squares[f, t0:t0 + len(w2)] += (w2[:, sel] ** 2).sum(1)

        states, m0 = program.init(k, kn)
        add(np.asarray(m0["w2"])[:B][None], 0)
        t = 1
        while t <= G:
            states, m = program.chunk(states, k, kn, jnp.int32(t))
            done = min(L, G - t + 1)
            w2 = np.asarray(m["w2"])[:done, :B]
            add(w2, t)
            t += done
            if b0 == 0 and t == 1 + done:      # first chunk: both compilations (+ one chunk's run)
                compile_s, first_work = time.perf_counter() - t_batch, B * done
        final[b0:b0 + B] = w2[-1]
        elapsed = time.perf_counter() - t_start - compile_s
        done_c = b0 + B
        work = done_c * G - first_work
        log(f"  {done_c:>8d}/{C} configs  {work / max(elapsed, 1e-9) / 1e6:6.3f} M config-gen/s  "
            f"peak RSS {peak_rss_gib():.2f} GiB  load {os.getloadavg()[0]:.1f}", flush=True)
    seconds = time.perf_counter() - t_start - compile_s
    mean = total / S
    std = np.sqrt(np.maximum(squares / S - mean ** 2, 0.0))
    return {"mean": mean, "std": std, "final": final}, seconds, compile_s, C * G - first_work


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="16,384 configurations x 100 generations")
    p.add_argument("--seeds", type=int, default=None, help="seeds per real fraction (default 62,500; quick 1,024)")
    p.add_argument("--generations", type=int, default=None, help="default 1000; quick 100")
    p.add_argument("--batch", type=int, default=None,
                   help="configurations per batch (default: the seeds of one real fraction, 62,500; quick 1,024)")
    p.add_argument("--chunk", type=int, default=100, help="generations per compiled chunk")
    p.add_argument("--cpu-devices", type=int, default=None, help="XLA host devices (default: one per core)")
    a = p.parse_args(argv)
    from scl.devices import use_cpu_devices

    use_cpu_devices(a.cpu_devices)
    import jax

    seeds = a.seeds or (1024 if a.quick else 62_500)
    G = a.generations or (100 if a.quick else 1000)
    batch = a.batch or seeds
    cfg = config(seeds, G, chunk=a.chunk)
    C = seeds * 16
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s), {os.cpu_count()} cores; "
          f"{C} configurations (16 real fractions x {seeds} seeds) x {G} generations, batches of "
          f"{batch}, chunks of {a.chunk}; load average {os.getloadavg()[0]:.2f}", flush=True)
    summary, seconds, compile_s, work = run_scale(cfg, batch)
    rate = work / seconds
    print(f"ran {C} x {G} = {C * G:.3g} configuration-generations in {seconds + compile_s:.1f} s "
          f"(first chunk incl. compilation {compile_s:.1f} s; the rest {seconds:.1f} s): {rate / 1e6:.3f} M configuration-generations/s")
    print(f"peak memory (ru_maxrss): {peak_rss_gib():.2f} GiB; load average now "
          + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    mean, std = summary["mean"], summary["std"]
    se = std[-1, G] / np.sqrt(seeds) * np.sqrt(2)
    print(f"check: real_fraction 1, mean w2 at generation {G} {mean[-1, G]:.4f} vs generation 0 "
          f"{mean[-1, 0]:.4f} (difference {(mean[-1, G] - mean[-1, 0]) / se:+.2f} standard errors); "
          f"real_fraction 0: {mean[0, 0]:.4f} -> {mean[0, G]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
