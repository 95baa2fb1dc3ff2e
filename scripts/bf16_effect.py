"""Effect of ``model.matmul_precision: bf16`` on results: one config run in fp32 and in bf16.

    PYTHONPATH=. python scripts/bf16_effect.py [CONFIG] [--seeds 8] [--generations 4] [key=value ...]

Both runs share every key (same seeds), so the difference is the precision's alone. Per swept
point and metric, at the last generation: the mean over seeds in fp32 and in bf16, their mean
paired difference (bf16 - fp32) with its standard error, and the seed spread (std over seeds of
the fp32 values). A difference well inside the seed spread means bf16 does not change the
experiment's conclusions at this size.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

import scl


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("config", nargs="?", default="configs/stability_diffusion.yaml")
    ap.add_argument("--seeds", type=int, default=8)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("overrides", nargs="*", help="extra key=value overrides (both runs)")
    a = ap.parse_intermixed_args()
    scl.use_cpu_devices()
    base = [f"seeds={a.seeds}", f"loop.generations={a.generations}", "run.progress=false", *a.overrides]
    runs = {}
    for prec in ("fp32", "bf16"):
        t0 = time.perf_counter()
        runs[prec] = scl.simulate(scl.load_config(a.config, base + [f"model.matmul_precision={prec}"]))
        print(f"{prec}: {time.perf_counter() - t0:.1f} s (incl. compile)", flush=True)
    f32, b16 = runs["fp32"], runs["bf16"]
    swept = [d for d in f32.dims if d not in ("seed", "generation")]
    print(f"{a.config}: {a.seeds} seeds, generations 0..{a.generations}; last generation:")
    print(f"{'metric':<10} {'point':<22} {'fp32 mean':>10} {'bf16 mean':>10} {'diff':>9} {'+-SE':>8} "
          f"{'seed std':>9} {'diff/std':>8}")
    worst = 0.0
    for name in f32.data_vars:
        x32 = f32[name].isel(generation=-1)
        x16 = b16[name].isel(generation=-1)
        points = [{}] if not swept else [dict(zip(swept, v)) for v in
                                          np.array(np.meshgrid(*[f32[d].values for d in swept],
                                                               indexing="ij")).reshape(len(swept), -1).T]
        for pt in points:
            v32 = np.asarray(x32.sel(pt).values, float).ravel()
            v16 = np.asarray(x16.sel(pt).values, float).ravel()
            d = v16 - v32
            std = v32.std(ddof=1)
            se = d.std(ddof=1) / np.sqrt(d.size)
            worst = max(worst, abs(d.mean()) / std if std > 0 else 0.0)
            label = ",".join(f"{k.split('.')[-1]}={float(v):g}" for k, v in pt.items())
            print(f"{name:<10} {label:<22} {v32.mean():>10.4f} {v16.mean():>10.4f} {d.mean():>+9.4f} "
                  f"{se:>8.4f} {std:>9.4f} {d.mean() / std if std > 0 else 0.0:>8.2f}")
    print(f"largest |mean difference| / seed std: {worst:.2f}")


if __name__ == "__main__":
    main()
