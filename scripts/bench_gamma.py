"""Chi-square draws for Bartlett's decomposition: jax.random.gamma versus a hand-written sampler.

scl.moments.chi_square draws the Wishart diagonal of every Gaussian fit taken from statistics
(``model.draw: statistics``): chi2(dof) = 2 Gamma(dof / 2), dof [P * d] flat, once per generation
and configuration. This times that use as the engine runs it: one jit of a vmap over C
configurations of a scan over G generations, dof typical of n = 100, d = 2 (replace: [99, 98];
fresh: real and model sets of round(f n) and n - round(f n) rows, f spread over the configurations).

    python scripts/bench_gamma.py            # C = 1024, G = 500
    python scripts/bench_gamma.py --engine   # also the whole engine grid with each sampler

The hand-written sampler (Marsaglia and Tsang, three vectorised candidates per element and a
while loop for the rare element that accepted none) is the one scl.moments used before
jax.random.gamma replaced it, kept here as the baseline. ``--engine`` times the whole engine grid
with each (scl.moments.chi_square patched to the hand-written one).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np



def handwritten_gamma(key, alpha, candidates: int = 3):
    """Gamma(alpha, 1), alpha >= 1: the previous scl.moments.gamma (small_alpha=False)."""
    alpha = jnp.asarray(alpha, jnp.float32)
    out_shape = alpha.shape
    alpha = alpha.reshape(-1)
    shape = alpha.shape
    d = alpha - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    k_first, k_more = jax.random.split(key)

    def propose(k):
        kx, ku = jax.random.split(k)
        x = jax.random.normal(kx, (candidates,) + shape)
        u = jax.random.uniform(ku, (candidates,) + shape)
        v = (1.0 + c * x) ** 3
        log_v = jnp.log(jnp.where(v > 0, v, 1.0))
        ok = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * v + d * log_v)
        value = d * v[-1]
        for i in range(candidates - 2, -1, -1):
            value = jnp.where(ok[i], d * v[i], value)
        return jnp.any(ok, axis=0), value

    found, value = propose(k_first)

    def more(state):
        i, found, value = state
        f, v = propose(jax.random.fold_in(k_more, i))
        return i + 1, found | f, jnp.where(found, value, v)

    _, _, value = jax.lax.while_loop(lambda s: ~jnp.all(s[1]), more, (0, found, value))
    return value.reshape(out_shape)


def chi_square_with(gamma):
    def chi_square(key, dof):
        k_gamma, k_normal = jax.random.split(key)
        g = 2.0 * gamma(k_gamma, jnp.maximum(dof, 2.0) / 2.0)
        z = jax.random.normal(k_normal, jnp.shape(dof))
        return jnp.where(dof >= 2, g, jnp.where(dof == 1, z * z, 0.0))
    return chi_square


SAMPLERS = {
    "jax.random.gamma": chi_square_with(lambda k, a: jax.random.gamma(k, a)),
    "hand-written": chi_square_with(lambda k, a: gamma(k, a, small_alpha=False)),
}


def dof_grid(kind, configs, n=100, d=2):
    """[C, P * d] degrees of freedom of the Bartlett diagonal."""
    j = np.arange(d)
    if kind == "replace":
        counts = np.full((configs, 1), n)
    else:
        k = np.round(np.linspace(0, 1, configs) * n)
        counts = np.stack([k, n - k], 1)
    return jnp.asarray((counts[:, :, None] - 1 - j).reshape(configs, -1), jnp.float32)


def program(chi_square, generations):
    def one(key, dof):
        def step(acc, g):
            return acc + chi_square(jax.random.fold_in(key, g), dof), None
        return jax.lax.scan(step, jnp.zeros_like(dof), jnp.arange(generations))[0]
    return jax.jit(jax.vmap(one))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", type=int, default=1024)
    ap.add_argument("--generations", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--engine", action="store_true",
                    help="also time scripts/bench_engine.py's whole grid with each sampler in scl.moments")
    a = ap.parse_args(argv)
    if a.engine:                 # like scl run and bench_engine.py: one XLA device per core
        from scl.devices import use_cpu_devices

        use_cpu_devices()
    keys = jax.random.split(jax.random.PRNGKey(0), a.configs)
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}; {a.configs} configurations x "
          f"{a.generations} generations, best of {a.repeats}")
    for kind in ("replace", "fresh"):
        dof = dof_grid(kind, a.configs)
        times = {}
        for name, chi in SAMPLERS.items():
            run = program(chi, a.generations)
            out = run(keys, dof).block_until_ready()            # compile
            best = float("inf")
            for _ in range(a.repeats):
                t0 = time.perf_counter()
                run(keys, dof).block_until_ready()
                best = min(best, time.perf_counter() - t0)
            times[name] = best
            mean = float(jnp.mean(out / a.generations - jnp.maximum(dof, 0)))
            print(f"  {kind:8s} dof {list(map(int, dof[-1]))}...  {name:17s} {best * 1e3:8.1f} ms "
                  f"({best / a.generations * 1e6:7.1f} us/generation; mean - dof {mean:+.3f})")
        ratio = times["hand-written"] / times["jax.random.gamma"]
        print(f"  {kind}: hand-written / jax.random.gamma = {ratio:.2f}")
    if a.engine:
        engine(a.repeats)


def engine(repeats: int, rounds: int = 3):
    """The engine grid of scripts/bench_engine.py (1024 configurations x 500 generations, regime
    fresh) run by scl.simulate with scl.moments.chi_square as it is (jax.random.gamma) and with the
    hand-written sampler;
    the two alternate ``rounds`` times, each the best of ``repeats`` runs after compilation."""
    import os
    import sys

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import scl
    from scl import engine as scl_engine, moments
    from bench_engine import config

    own = moments.chi_square
    cfg = config()
    best = {"hand-written": float("inf"), "jax.random.gamma": float("inf")}
    for _ in range(rounds):
        for name, fn in (("jax.random.gamma", own), ("hand-written", SAMPLERS["hand-written"])):
            moments.chi_square = fn
            scl_engine._PROGRAMS.clear()                 # recompile with this sampler
            scl.simulate(cfg, progress=False)
            for _ in range(repeats):
                ds = scl.simulate(cfg, progress=False)
                best[name] = min(best[name], ds.attrs["timing_run_s"])
    moments.chi_square = own
    print(f"engine grid (bench_engine.py), run time, best of {rounds} x {repeats}: "
          + ", ".join(f"{k} {v:.3f} s" for k, v in best.items())
          + f"; jax.random.gamma / hand-written = {best['jax.random.gamma'] / best['hand-written']:.2f}")


if __name__ == "__main__":
    main()
