"""Time experiment 3 (configs/correction_gaussian.yaml): 8 gammas x 20 seeds x 500 generations of
the accumulate regime with the idealised corrector, in one compiled program per chunk size.

    python scripts/bench_correction.py [--set key=value ...]

Prints compile+first-chunk time, total run time, generations x configurations per second and the
median final W2 per gamma.
"""
from __future__ import annotations

import argparse
import time

import jax

import scl


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/correction_gaussian.yaml")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args()
    cfg = scl.load_config(args.config, args.set)
    t0 = time.perf_counter()
    ds = scl.simulate(cfg, progress=False)
    total = time.perf_counter() - t0
    G = cfg.loop.generations
    C = ds.sizes["seed"] * ds.sizes.get("gamma", 1)
    print(f"backend {jax.default_backend()}, {len(jax.devices())} device(s); {C} configurations x {G} generations")
    print(f"first chunk (compile + {cfg.run.chunk_size} generations): {ds.attrs['timing_first_chunk_s']:.2f} s")
    print(f"simulate() total: {total:.2f} s  ({G * C / ds.attrs['timing_run_s']:.0f} config-generations / s)")
    final = ds["w2"].isel(generation=-1).median("seed")
    for g, v in zip(ds["gamma"].values, final.values):
        print(f"  gamma={g:<5g} median W2 at generation {G}: {v:.4f}")


if __name__ == "__main__":
    main()
