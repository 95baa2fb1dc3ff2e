"""Run time with per-generation checkpoints versus none, and disk space per generation.

    python scripts/bench_checkpoint.py                      # quickstart sweep
    python scripts/bench_checkpoint.py --config configs/X.yaml --set loop.generations=50

Compiled programs come from a persistent compilation cache (warmed by one untimed run per mode),
so the timings compare the loops, not the compilers. Modes alternate to spread machine noise.
Prints: median wall time per mode, overhead, time spent in the host-side save calls (the part that
does not overlap the next chunk), the final wait for pending writes, and bytes per generation.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import jax


def du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/quickstart.yaml")
    ap.add_argument("--set", action="append", default=[])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import scl
    from scl import checkpoint as ck

    tmp = Path(tempfile.mkdtemp(prefix="bench_ckpt_"))
    jax.config.update("jax_compilation_cache_dir", str(tmp / "jax_cache"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    cfg = scl.load_config(args.config, args.set + ["run.progress=false"])
    G = cfg.loop.generations
    C = len(cfg.knob_grid()) * cfg.seeds * len(cfg.static_variants())

    spent = {"save": 0.0, "close": 0.0}
    save, close = ck.VariantCheckpoint.save, ck.VariantCheckpoint.close

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent[name] += time.perf_counter() - t
        return wrapper

    ck.VariantCheckpoint.save = timed("save", save)
    ck.VariantCheckpoint.close = timed("close", close)

    def run(mode: str, i: int):
        out = tmp / f"{mode}_{i}"
        shutil.rmtree(out, ignore_errors=True)
        for k in spent:
            spent[k] = 0.0
        t = time.perf_counter()
        scl.simulate(cfg, out_dir=out if mode == "checkpoints" else None)
        return time.perf_counter() - t, dict(spent), out

    for mode in ("none", "checkpoints"):          # warm the compilation cache
        run(mode, -1)
    times = {"none": [], "checkpoints": []}
    host = []
    for i in range(args.repeats):
        for mode in ("none", "checkpoints"):
            wall, s, out = run(mode, i)
            times[mode].append(wall)
            if mode == "checkpoints":
                host.append(s)
    med = {m: statistics.median(v) for m, v in times.items()}
    ckdir = out / "checkpoints"
    history = sum(du(p / "history") for p in ckdir.iterdir() if p.is_dir())
    state = sum(du(p / "state") for p in ckdir.iterdir() if p.is_dir())
    chunks = -(-G // cfg.run.chunk_size) + 1
    print(f"config: {args.config} {' '.join(args.set)}  ({C} configurations x {G} generations, "
          f"chunk_size {cfg.run.chunk_size}, checkpoint.stride {cfg.checkpoint.stride}, keep {cfg.checkpoint.keep})")
    print(f"backend: {jax.default_backend()}  devices: {len(jax.devices())}")
    for m in times:
        print(f"  {m:<12} median {med[m]:7.2f} s   runs {', '.join(f'{x:.2f}' for x in times[m])}")
    print(f"  overhead     {100 * (med['checkpoints'] / med['none'] - 1):+.1f}%")
    print(f"  host time in save calls {statistics.median(h['save'] for h in host):.3f} s "
          f"({chunks * len(cfg.static_variants())} saves), final wait {statistics.median(h['close'] for h in host):.3f} s")
    print(f"  disk: history (metrics + models, all kept) {history / 1e6:.2f} MB = {history / (G + 1) / 1e3:.1f} kB "
          f"per generation ({history / (G + 1) / C:.0f} B per configuration-generation); "
          f"latest full states {state / 1e6:.2f} MB")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
