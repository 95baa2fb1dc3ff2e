"""Chi-square draws for Bartlett's decomposition: jax.random.gamma versus a hand-written sampler.

scl.moments.chi_square draws the Wishart diagonal of every Gaussian fit taken from statistics
(``model.draw: statistics``): chi2(dof) = 2 Gamma(dof / 2), dof [P * d] flat, once per generation
and configuration. This times that use as the engine runs it: one jit of a vmap over C
configurations of a scan over G generations, dof typical of n = 100, d = 2 (replace: [99, 98];
fresh: real and model sets of round(f n) and n - round(f n) rows, f spread over the configurations).

    python scripts/bench_gamma.py            # C = 1024, G = 500

scl keeps its hand-written sampler (scl.moments.gamma: Marsaglia and Tsang, three vectorised
candidates per element and a while loop for the rare element that accepted none): alone the two
tie on the engine's flat [4] degrees of freedom, and inside the whole engine
(scripts/bench_engine.py) the hand-written one measured about 8% faster.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from scl.moments import gamma


def chi_square_with(gamma):
    def chi_square(key, dof):
        k_gamma, k_normal = jax.random.split(key)
        g = 2.0 * gamma(k_gamma, jnp.maximum(dof, 2.0) / 2.0)
        z = jax.random.normal(k_normal, jnp.shape(dof))
        return jnp.where(dof >= 2, g, jnp.where(dof == 1, z * z, 0.0))
    return chi_square


SAMPLERS = {
    "jax.random.gamma": chi_square_with(lambda k, a: jax.random.gamma(k, a)),
    "scl.moments.gamma (hand-written)": chi_square_with(lambda k, a: gamma(k, a, small_alpha=False)),
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
    a = ap.parse_args(argv)
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


if __name__ == "__main__":
    main()
