"""Engine speed: one compiled sweep versus a per-configuration jit loop and a plain NumPy loop.

Grid: 64 seeds x 16 real fractions x 500 generations, n = 100, d = 2, regime fresh, metric w2.
Also: compile time of the program for 1000 generations versus 10, and a roofline: the random
numbers the grid draws per second against ``jax.random.normal``'s raw throughput (same devices,
same run, same count; jitted, best of 5), with the cost of each part of a generation.

Measured (2-core CPU, 2 XLA devices, jax 0.10.2; the machine shared with other jobs, load
average given, so the figures move by 2-3x between runs):
    before this change, load 0.7-1.3: engine 0.560 s, per-config jit 3.465 s (6.2x), NumPy 44.5 s
    (79.5x); the engine's chunk 0.667 s, 14 numbers x 1024 x 500 in it = 10.8 M/s against 143 M/s
    for jax.random.normal: 7.5 % of raw. With chi_square swapped for a one-normal stand-in (not
    exact) the chunk took 0.262 s: the 4 gamma draws are 60 % of a generation.
    generation keys by fold_in (scl.engine.generation_keys, bit-identical): the chunk alone
    1.098 -> 0.801 s (load 19, same process); inside scl.simulate 0.942 vs 0.940 s (load 9-11):
    no gain measurable there.
    this script now, load 1.0-1.4: engine 0.585 s, per-config jit 4.245 s (7.3x), NumPy 47.0 s
    (80.4x); roofline 12.2 M/s against 276.6 M/s (jax.random.normal sharded over the 2 devices)
    = 4.4 %; per configuration-generation (engine 1143 ns): keys 95 ns, keys + 10 normals 311 ns,
    keys + 4 gammas 789 ns; one gamma draw = 48 raw normals, one normal drawn per configuration
    (vmapped, [C, 10]) = 6 raw normals. At load 9-10: engine 0.951 s, per-config jit 10.0 s
    (10.5x), roofline 7.8 %, a gamma draw 16.9 raw normals (the raw rate suffers most from load).
    A hand-written Marsaglia-Tsang (2, 3 or 4 vectorised candidates, a while loop for the rest)
    took 0.41-0.84 s against jax.random.gamma's 0.45 s in the same runs (bench_gamma.py layout,
    load 15): no gain, as bench_gamma.py found before.
So >= 50 % of raw is out of reach for this grid: a gamma draw costs 17-48 raw normals (rejection,
per-element key splits and a vmapped while loop that runs until the whole batch accepts), and
with 10 normals and 4 gammas per configuration-generation even free keys, metric and fit would
cap the numbers at 14 / (10 + 4 x 48) = 7 % (18 % at the load-9 figure). A normal drawn from each
configuration's own key costs 6 raw normals besides; drawing [d, C] from one key would be faster
but breaks common random numbers (a configuration must give the same draws alone and in a sweep).
>= 10x the per-configuration loop: 7.3x at low load (6.2x before), 10.5x in one loaded run.

    python scripts/bench_engine.py              # prints every figure
    python scripts/bench_engine.py --numpy-configs 1024 --loop-configs 1024   # no extrapolation
    python scripts/bench_engine.py --cpu-devices 1   # the engine on one XLA device (one core)

Like ``scl run``, the engine splits the host CPU into one XLA device per core by default and
shards the configuration axis over them (jax.sharding); ``--cpu-devices N`` overrides. The
per-configuration loop and NumPy run one configuration at a time, as a one-off script would.
The Gaussian family draws each training set's mean and scatter directly (``model.draw: auto``,
exact in distribution, scl.moments); ``--draw rows`` times the engine sampling every row.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

import scl
from scl.devices import use_cpu_devices
from scl.engine import build_program, flat_inputs


def config(generations=500, seeds=64, fractions=16, n=100, chunk=50, draw="auto"):
    return scl.Config.from_dict({
        "name": "bench", "seeds": seeds, "seed": 0,
        "truth": {"kind": "gaussian", "dim": 2, "cov": [[1.0, 0.5], [0.5, 1.0]]},
        "model": {"family": "gaussian", "draw": draw},
        "loop": {"generations": generations, "n": n, "regime": "fresh", "real_fraction": 0.0},
        "metrics": {"names": ["w2"]},
        "sweep": {"loop.real_fraction": [float(f) for f in np.linspace(0, 1, fractions)]},
        "run": {"chunk_size": chunk, "progress": False},
    })


def time_engine(cfg, repeats=3):
    """(first call s incl. compilation, best of ``repeats`` later calls s, results): a run takes
    well under a second, so the best of a few damps this machine's noise."""
    t0 = time.perf_counter()
    scl.simulate(cfg)                       # includes compilation
    first = time.perf_counter() - t0
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        ds = scl.simulate(cfg)              # compiled program reused
        best = min(best, time.perf_counter() - t0)
    return first, best, ds


def time_per_config_loop(cfg, count):
    """The same step, one configuration at a time: one jit (reused) runs all generations."""
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    G = cfg.loop.generations

    @jax.jit
    def one(key, kn):
        state, m0 = program.init_one(key, kn)

        def body(s, t):
            return program.step(s, key, kn, t)
        _, ms = jax.lax.scan(body, state, jnp.arange(1, G + 1))
        return m0, ms

    pick = lambda i: jax.tree_util.tree_map(lambda a: a[i], knobs)
    jax.block_until_ready(one(keys[0], pick(0)))          # compile once
    t0 = time.perf_counter()
    for i in range(count):
        jax.block_until_ready(one(keys[i], pick(i)))
    return time.perf_counter() - t0


def numpy_loop(cfg, count, seed=0):
    """Plain NumPy: the same experiment (fresh regime, MLE Gaussian, closed-form W2) per config."""
    rng = np.random.default_rng(seed)
    mean0, cov0 = np.zeros(2), np.array(cfg.truth.cov)
    chol0 = np.linalg.cholesky(cov0)
    n, G = cfg.loop.n, cfg.loop.generations
    fractions = [c.loop.real_fraction for _, c in cfg.knob_grid()]
    S = cfg.seeds

    def sqrtm(a):
        v, u = np.linalg.eigh(a)
        return (u * np.sqrt(np.clip(v, 0, None))) @ u.T

    r0 = sqrtm(cov0)

    def w2(m, c):
        return np.sqrt(max(np.sum((m - mean0) ** 2) + np.trace(c) + np.trace(cov0)
                           - 2 * np.trace(sqrtm(r0 @ c @ r0)), 0.0))

    out = np.empty((count, G + 1))
    for i in range(count):
        f = fractions[i // S]
        x = mean0 + rng.standard_normal((n, 2)) @ chol0.T
        m, c = x.mean(0), np.cov(x.T, bias=True)
        out[i, 0] = w2(m, c)
        k = int(round(f * n))
        for t in range(1, G + 1):
            real = mean0 + rng.standard_normal((k, 2)) @ chol0.T
            L = np.linalg.cholesky(c) if np.all(np.isfinite(c)) else np.zeros((2, 2))
            syn = m + rng.standard_normal((n - k, 2)) @ L.T
            x = np.concatenate([real, syn])
            m, c = x.mean(0), np.cov(x.T, bias=True)
            out[i, t] = w2(m, c)
    return out


def _best(fn, repeats=5):
    """Best wall time of ``repeats`` calls of ``fn`` (after one call that compiles)."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def grid_draws(cfg):
    """Random numbers one generation of one configuration draws on the statistics path
    (scl.moments.draw_sets): per training set (fresh: the real rows and the model's rows, P = 2)
    d normals for the mean and d(d-1)/2 for Bartlett's off-diagonal, and d chi-squares, each one
    ``jax.random.gamma`` draw plus one normal (chi_square draws both). Returns (normals, gammas)."""
    P, d = (2 if cfg.loop.regime == "fresh" else 1), cfg.truth.dim
    return P * (d + d * (d - 1) // 2) + P * d, P * d


def roofline(cfg, engine_s, repeats=5):
    """The grid's random numbers per second against ``jax.random.normal``'s raw throughput (same
    devices, same count, sharded like the engine), and the cost of each part of a generation in
    the engine's layout (a vmap over C configurations inside a scan over G generations)."""
    from scl.engine import shard_configs

    C, G = cfg.seeds * len(cfg.sweep[0][1]), cfg.loop.generations
    normals, gammas = grid_draws(cfg)
    count = (normals + gammas) * C * G
    devices = jax.devices()
    mesh = jax.sharding.Mesh(np.array(devices), ("config",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("config"))
    count -= count % len(devices)
    raw = jax.jit(lambda k: jax.random.normal(k, (count,)), out_shardings=spec)
    raw_s = _best(lambda: raw(jax.random.PRNGKey(1)), repeats)
    raw_rate, grid_rate = count / raw_s, count / engine_s
    print(f"roofline: the grid draws {normals + gammas} random numbers per configuration-generation "
          f"({normals} normals + {gammas} gamma draws), {count / 1e6:.2f} M in all: "
          f"{grid_rate / 1e6:.1f} M/s; jax.random.normal draws the same count in {raw_s:.3f} s "
          f"({raw_rate / 1e6:.1f} M/s): grid at {100 * grid_rate / raw_rate:.1f} % of raw (target >= 50 %)")

    # the parts of one generation, each alone in the engine's layout
    from scl.engine import KEY_NAMES

    keys = jax.random.split(jax.random.PRNGKey(0), C)
    f = np.repeat(np.linspace(0, 1, len(cfg.sweep[0][1])), cfg.seeds)
    k_real = np.round(f * cfg.loop.n)
    dof = np.stack([k_real - 1, k_real - 2, cfg.loop.n - k_real - 1, cfg.loop.n - k_real - 2], 1)
    (keys, dof), _ = shard_configs((keys, jnp.asarray(dof, jnp.float32)), C)

    def scanned(draw):
        def one(key, dof):
            def body(acc, t):
                return acc + draw(key, dof, t), None
            return jax.lax.scan(body, jnp.zeros(()), jnp.arange(1, G + 1))[0]
        run = jax.jit(jax.vmap(one))
        return _best(lambda: run(keys, dof), repeats)

    def key_tree(key, t):        # the engine's keys: fold_in + split(8), draw_sets' and chi_square's splits
        k = jax.random.split(jax.random.fold_in(key, t), len(KEY_NAMES))[0]
        a, b = jax.random.split(k)
        c, e = jax.random.split(a)
        return b, c, e

    def keys_only(key, dof, t):
        return sum(jax.random.bits(x, (), jnp.uint32)[()].astype(jnp.float32) for x in key_tree(key, t))

    def normal_draws(key, dof, t):
        return jnp.sum(jax.random.normal(key_tree(key, t)[0], (normals,)))

    def gamma_draws(key, dof, t):
        return jnp.sum(jax.random.gamma(key_tree(key, t)[1], jnp.maximum(dof, 2.0) / 2.0))

    parts = {"keys (fold_in, 3 splits)": scanned(keys_only),
             f"keys + {normals} normals": scanned(normal_draws),
             f"keys + {gammas} gammas": scanned(gamma_draws)}
    per = lambda s: s / (C * G) * 1e9
    print(f"  parts, each alone in the engine's layout (ns per configuration-generation; raw normal "
          f"{raw_s / count * 1e9:.2f} ns each): engine {per(engine_s):.1f}")
    for name, s in parts.items():
        print(f"    {name:28s} {per(s):7.1f} ns")
    k = parts["keys (fold_in, 3 splits)"]
    gamma_each = (parts[f"keys + {gammas} gammas"] - k) / (C * G * gammas)
    normal_each = (parts[f"keys + {normals} normals"] - k) / (C * G * normals)
    print(f"  one gamma draw costs {gamma_each * 1e9:.1f} ns = {gamma_each / (raw_s / count):.1f} raw normals "
          f"(Marsaglia-Tsang rejection, a while loop run until every draw of the batch is accepted); "
          f"one normal in this layout {normal_each * 1e9:.2f} ns = {normal_each / (raw_s / count):.1f} raw normals")
    best_case = (normals + gammas) / (normals + gammas * gamma_each / (raw_s / count))
    print(f"  so even with free keys, metric and fit and every normal at the raw rate, the grid's "
          f"numbers would come at most at {100 * best_case:.0f} % of raw normal throughput")


def compile_seconds(generations, chunk=50):
    cfg = config(generations=generations, chunk=chunk)
    program = build_program(cfg)
    keys, knobs = flat_inputs(cfg)
    t0 = time.perf_counter()
    states = jax.eval_shape(program.init, keys, knobs)[0]
    program.init.lower(keys, knobs).compile()
    program.chunk.lower(states, keys, knobs, jnp.int32(1)).compile()
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generations", type=int, default=500)
    p.add_argument("--numpy-configs", type=int, default=128, help="configs timed in NumPy (rest extrapolated)")
    p.add_argument("--loop-configs", type=int, default=256, help="configs timed in the per-config loop")
    p.add_argument("--cpu-devices", type=int, default=None, help="XLA host devices for the engine (default: one per core)")
    p.add_argument("--draw", default="auto", choices=["auto", "rows"], help="model.draw for every timed loop")
    p.add_argument("--skip-compile", action="store_true", help="skip the compile-time comparison")
    p.add_argument("--summary", default=None, help="append the main figures as a tab-separated line to this file")
    a = p.parse_args()
    use_cpu_devices(a.cpu_devices)          # before jax computes anything (default: one per core)
    cfg = config(generations=a.generations, draw=a.draw)
    C = cfg.seeds * len(cfg.sweep[0][1])
    print(f"backend {jax.default_backend()}, {jax.device_count()} device(s), {os.cpu_count()} cores, model.draw={a.draw}; grid {cfg.seeds} seeds x "
          f"{len(cfg.sweep[0][1])} real fractions = {C} configs x {a.generations} generations, n={cfg.loop.n}, d=2")

    first, engine_s, ds = time_engine(cfg)
    print(f"engine:            {engine_s:8.3f} s  (best of 3; first call incl. compile {first:.3f} s)")

    loop_n = min(a.loop_configs, C)
    loop_s = time_per_config_loop(cfg, loop_n) * C / loop_n
    print(f"per-config jit:    {loop_s:8.3f} s  ({'measured' if loop_n == C else f'{loop_n} configs measured, x{C / loop_n:g} extrapolated'})")

    np_n = min(a.numpy_configs, C)
    t0 = time.perf_counter()
    ref = numpy_loop(cfg, np_n)
    numpy_s = (time.perf_counter() - t0) * C / np_n
    print(f"numpy loop:        {numpy_s:8.3f} s  ({'measured' if np_n == C else f'{np_n} configs measured, x{C / np_n:g} extrapolated'})")
    print(f"speed-up vs numpy:          {numpy_s / engine_s:8.1f}x  (target >= 50x)")
    print(f"speed-up vs per-config jit: {loop_s / engine_s:8.1f}x  (target >= 10x)")
    # the NumPy loop is a reference implementation: its fully synthetic median W2 must match
    eng = np.median(ds.w2.isel(real_fraction=0).values[:, -1])
    print(f"check: median final W2 at real_fraction 0: engine {eng:.3f}, numpy {np.median(ref[:min(np_n, cfg.seeds), -1]):.3f}")
    if a.summary:
        with open(a.summary, "a") as out:
            out.write(f"engine {C} cfg x {a.generations} gens\t{engine_s:.3f} s = "
                      f"{C * (a.generations + 1) / engine_s:.3g} cfg*gen/s; x{loop_s / engine_s:.1f} vs "
                      f"per-config jit, x{numpy_s / engine_s:.1f} vs numpy\n")

    roofline(cfg, engine_s)

    if a.skip_compile:
        return
    c10, c1000 = compile_seconds(10), compile_seconds(1000)
    print(f"compile time: 10 generations {c10:.3f} s, 1000 generations {c1000:.3f} s, ratio {c1000 / c10:.2f} (target <= 1.2)")


if __name__ == "__main__":
    main()
