"""Benchmark: a KDE self-consuming loop on two moons, scl (one compiled program per regime)
versus the same experiment as a per-configuration Python loop with scikit-learn.

Experiment: 3 bandwidths x 10 seeds x G generations x n = 316 rows, regimes replace, accumulate
and accumulate_subsample. Each generation: fit the KDE, draw n synthetic rows, mix. Both sides
do the same work (G + 1 fits, G sampling steps); at the end both report the median held-out NLL
of the final models on 1000 fresh moons rows as a sanity check (they are independent Monte
Carlo runs of the same loop, so the numbers agree only statistically).

    python scripts/bench_classical.py                        # full comparison, G = 100
    python scripts/bench_classical.py --sklearn-seeds 2      # sklearn on 2 of 10 seeds, extrapolated
    python scripts/bench_classical.py --growth 25 50 100     # scl run time versus G

Accumulate trains generation t on n + (t-1) n rows; scl keeps them in a fixed-capacity buffer of
n + G n rows (rows past the count written so far are absent), so its cost per generation is fixed
by G, not t.
scikit-learn is imported and warmed up before any timing. scl uses the devices ``scl run`` would
(one for this 30-configuration sweep: scl.devices.devices_for; ``--cpu-devices N`` overrides);
scikit-learn runs one configuration at a time, as a one-off script would.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

import scl
from scl.devices import devices_for, use_cpu_devices
from scl.engine import build_program, flat_inputs, shard_configs
from scl.families.kde import kde_log_prob

REGIMES = ("replace", "accumulate", "accumulate_subsample")


def make_config(regime: str, bandwidths, seeds: int, generations: int, n: int):
    return scl.Config.from_dict({
        "name": f"bench_kde_{regime}", "seed": 0, "seeds": seeds,
        "truth": {"kind": "moons", "noise": 0.1},
        "model": {"family": "kde", "bandwidth": float(bandwidths[0])},
        "loop": {"generations": generations, "n": n, "regime": regime},
        "metrics": {"names": []},
        "sweep": {"model.bandwidth": [float(h) for h in bandwidths]},
        "run": {"chunk_size": 25, "progress": False}})


def time_scl(cfg, repeats: int = 5):
    """(compile s, run s, final model states): the program is built once; compile time is the
    first call's time minus the best of ``repeats`` later calls (same compiled program)."""
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    C = keys.shape[0]
    (keys, knobs), _ = shard_configs((keys, knobs), C)   # over every device, as scl run does

    def run():
        states, _ = program.init(keys, knobs)
        for t0 in range(1, cfg.loop.generations + 1, program.chunk_size):
            states, _ = program.chunk(states, keys, knobs, t0)
        return jax.block_until_ready(states).model

    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    runs = []
    for _ in range(repeats):
        t = time.perf_counter()
        final = run()
        runs.append(time.perf_counter() - t)
    return first - min(runs), min(runs), jax.tree_util.tree_map(lambda a: np.asarray(a)[:C], final)


def moons_numpy(n, seed):
    """n rows [n, 2] float64 from scl's ``moons`` truth (random angles, as in the scl loop)."""
    from scl.data import make_source
    from scl.data.toys import Moons
    return np.asarray(make_source(Moons(noise=0.1)).sample(jax.random.PRNGKey(seed), n), np.float64)


def sklearn_loop(regime: str, h: float, seed: int, generations: int, n: int, checkpoints=()):
    """One configuration as a plain scikit-learn loop. Returns (final KDE, {G: elapsed s})."""
    from sklearn.neighbors import KernelDensity
    rng = np.random.default_rng(seed)
    real = moons_numpy(n, 1000 + seed)
    pool, train = real, real
    marks, t0 = {}, time.perf_counter()
    kde = KernelDensity(bandwidth=h).fit(train)
    for t in range(1, generations + 1):
        syn = kde.sample(n, random_state=int(rng.integers(2 ** 31)))
        if regime == "replace":
            train = syn
        else:
            pool = np.concatenate([pool, syn])
            train = pool if regime == "accumulate" else pool[rng.choice(len(pool), n, replace=False)]
        kde = KernelDensity(bandwidth=h).fit(train)
        if t in checkpoints:
            marks[t] = time.perf_counter() - t0
    return kde, marks


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generations", type=int, default=100)
    ap.add_argument("--n", type=int, default=316)
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--bandwidths", type=float, nargs="+", default=[0.05, 0.1, 0.2])
    ap.add_argument("--regimes", nargs="+", default=list(REGIMES), choices=REGIMES)
    ap.add_argument("--sklearn-seeds", type=int, default=None,
                    help="run scikit-learn on this many of the seeds per (regime, bandwidth) and extrapolate")
    ap.add_argument("--cpu-devices", type=int, default=None,
                    help="XLA devices the scl run shards its configurations over (default: as scl run)")
    ap.add_argument("--growth", type=int, nargs="*", default=[25, 50, 100],
                    help="also time scl at these generation counts (run time versus G)")
    args = ap.parse_args()
    G, n, S, H = args.generations, args.n, args.seeds, args.bandwidths
    # as `scl run` would: split the CPU only when the sweep is large enough (scl.devices); before
    # JAX computes anything
    use_cpu_devices(args.cpu_devices if args.cpu_devices is not None
                    else devices_for(make_config(args.regimes[0], H, S, G, n)))
    sk_seeds = min(args.sklearn_seeds or S, S)
    y_test = jnp.asarray(moons_numpy(1000, 12345), jnp.float32)
    print(f"KDE on two moons: {len(H)} bandwidths x {S} seeds x {G} generations x n = {n}; "
          f"jax {jax.__version__} on {jax.devices()[0].platform}, {jax.device_count()} device(s) for scl")
    if sk_seeds < S:
        print(f"NOTE: scikit-learn runs {sk_seeds} of {S} seeds per configuration; its totals are "
              f"extrapolated x{S / sk_seeds:g} (every seed does the same work).")
    sklearn_loop("replace", H[0], 0, 2, n)      # warm-up: import scikit-learn outside the timings
    total_scl = total_sk = 0.0
    rows = []
    for regime in args.regimes:
        cfg = make_config(regime, H, S, G, n)
        compile_s, run_s, final = time_scl(cfg)
        nll_scl = -np.asarray(jax.vmap(lambda s: jnp.mean(kde_log_prob(s, y_test)))(final)).reshape(len(H), S)
        sk_time, nll_sk = 0.0, np.zeros((len(H), sk_seeds))
        for i, h in enumerate(H):
            for s in range(sk_seeds):
                t = time.perf_counter()
                kde, _ = sklearn_loop(regime, h, s, G, n)
                sk_time += time.perf_counter() - t
                nll_sk[i, s] = -kde.score_samples(np.asarray(y_test)).mean()
        sk_total = sk_time * S / sk_seeds
        total_scl += run_s
        total_sk += sk_total
        rows.append((regime, compile_s, run_s, sk_total, nll_scl, nll_sk))
        print(f"{regime:22s} scl compile {compile_s:6.2f} s  run {run_s:8.4f} s | sklearn "
              f"{sk_total:8.1f} s{' (extrapolated)' if sk_seeds < S else ''} | speedup {sk_total / run_s:7.0f}x")
        for i, h in enumerate(H):
            print(f"    h = {h:<5g} median final held-out NLL: scl {np.median(nll_scl[i]):7.3f}   "
                  f"sklearn {np.median(nll_sk[i]):7.3f}")
    print(f"ALL regimes: scl run {total_scl:.3f} s vs sklearn {total_sk:.1f} s -> speedup "
          f"{total_sk / total_scl:.0f}x after compilation (compile times listed separately above)")

    if args.growth:
        print("\nRun time versus number of generations G (after compilation; accumulate's buffer holds n + G n rows):")
        print(f"{'regime':22s}" + "".join(f"{'G=' + str(g):>24s}" for g in args.growth))
        for regime in args.regimes:
            cells = []
            for g in args.growth:
                _, run_s, _ = time_scl(make_config(regime, H, S, g, n))
                cells.append(f"{run_s:8.4f}s ({1e3 * run_s / g:6.3f}ms/g)")
            print(f"{regime:22s}" + "".join(f"{c:>24s}" for c in cells))
        if "accumulate" in args.regimes:
            cp = tuple(g for g in args.growth if g <= G)
            _, marks = sklearn_loop("accumulate", H[0], 0, max(cp), n, checkpoints=cp)
            print("sklearn accumulate, one configuration, elapsed at generation: " +
                  ", ".join(f"G={g}: {marks[g]:.2f}s" for g in cp))


if __name__ == "__main__":
    main()
