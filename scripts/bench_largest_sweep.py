"""The largest Gaussian-family sweep that fits on the device, and its throughput.

    PYTHONPATH=. python scripts/bench_largest_sweep.py [--start 1024] [--cap 16777216] [--generations 50]

Grid: seeds x 16 real fractions (the bench_engine experiment: d = 2, n = 100, regime fresh, metric
w2, model.draw auto). Starting from ``--start`` configurations, the seed count doubles until the
run fails for memory (XLA RESOURCE_EXHAUSTED or a host MemoryError), the next size would pass
``--cap`` configurations, one run takes longer than ``--max-seconds``, or the next size would
likely end after ``--budget-seconds`` (estimated as 2.5x the last size's compile + runs); a SIGTERM
(``timeout``) stops it too, still reporting the largest size so far. Each size runs twice
(scl.simulate: the first call compiles, the second is timed) and prints configurations x
generations per second; the last line names the largest size that ran. The whole sweep is one
program without ``run.config_batch_size``, so "fits" means the unbatched program fits.
"""
from __future__ import annotations

import argparse
import signal
import time

import numpy as np

import scl

FRACTIONS = 16


def config(configs: int, generations: int):
    return scl.Config.from_dict({
        "name": "largest_sweep", "seeds": configs // FRACTIONS, "seed": 0,
        "truth": {"kind": "gaussian", "dim": 2, "cov": [[1.0, 0.5], [0.5, 1.0]]},
        "model": {"family": "gaussian"},
        "loop": {"generations": generations, "n": 100, "regime": "fresh", "real_fraction": 0.0},
        "metrics": {"names": ["w2"]},
        "sweep": {"loop.real_fraction": [float(f) for f in np.linspace(0, 1, FRACTIONS)]},
        "run": {"chunk_size": generations, "progress": False},
    })


def out_of_memory(err: BaseException) -> bool:
    text = f"{type(err).__name__}: {err}"
    return isinstance(err, MemoryError) or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--start", type=int, default=1024, help="configurations of the first run (multiple of 16)")
    ap.add_argument("--cap", type=int, default=2 ** 24, help="stop before passing this many configurations")
    ap.add_argument("--generations", type=int, default=50)
    ap.add_argument("--max-seconds", type=float, default=60.0, help="stop doubling after a run this long")
    ap.add_argument("--budget-seconds", type=float, default=float("inf"),
                    help="do not start a size likely to end after this many seconds from the start")
    ap.add_argument("--summary", default=None, help="append the result as a tab-separated line to this file")
    a = ap.parse_args()
    start = time.perf_counter()

    def terminated(*_):
        raise TimeoutError("SIGTERM")
    signal.signal(signal.SIGTERM, terminated)
    scl.use_cpu_devices()
    import jax

    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({dev.device_kind}), {jax.device_count()} device(s); "
          f"{a.generations} generations, Gaussian d=2 n=100, grid seeds x {FRACTIONS} real fractions")
    print(f"{'configs':>10} {'compile+run s':>13} {'run s':>8} {'cfg*gen/s':>12}")
    best, stop = None, "cap"
    configs = max(FRACTIONS, a.start // FRACTIONS * FRACTIONS)
    while configs <= a.cap:
        cfg = config(configs, a.generations)
        try:
            t0 = time.perf_counter()
            scl.simulate(cfg)
            first = time.perf_counter() - t0
            t0 = time.perf_counter()
            ds = scl.simulate(cfg)
            run = time.perf_counter() - t0
        except TimeoutError:
            print(f"{configs:>10} stopped by SIGTERM")
            stop = "sigterm"
            break
        except Exception as err:               # noqa: BLE001 - memory errors come as XlaRuntimeError
            if not out_of_memory(err):
                raise
            print(f"{configs:>10} out of memory: {str(err).splitlines()[0][:120]}")
            stop = "memory"
            break
        assert np.isfinite(ds.w2.values).all()
        rate = configs * (a.generations + 1) / run
        best = (configs, run, rate)
        print(f"{configs:>10} {first:>13.2f} {run:>8.2f} {rate:>12.3g}", flush=True)
        if run > a.max_seconds:
            stop = "time"
            break
        if time.perf_counter() - start + 2.5 * (first + run) > a.budget_seconds:
            stop = "budget"
            break
        configs *= 2
    if best is None:
        print("no size ran")
        return
    why = {"cap": f"next size over the cap {a.cap}", "memory": "next size ran out of memory",
           "time": f"a run took over {a.max_seconds:g} s",
           "budget": f"the next size would likely pass {a.budget_seconds:g} s", "sigterm": "SIGTERM"}[stop]
    print(f"largest sweep that ran: {best[0]} configurations x {a.generations} generations in "
          f"{best[1]:.2f} s = {best[2]:.3g} configurations x generations / s (stopped: {why})")
    if a.summary:
        with open(a.summary, "a") as out:
            out.write(f"largest sweep\t{best[0]} configs x {a.generations} gens, {best[2]:.3g} cfg*gen/s "
                      f"(stopped: {why})\n")


if __name__ == "__main__":
    main()
