"""Seconds per sample batch: plain, SIMS-guided and Neon sampling, neural diffusion and analytic.

    python scripts/bench_sims.py [--n 4096] [--repeats 5]

The plain figure is the family without an auxiliary (one network evaluation per step). With an
auxiliary the sampler always evaluates both networks per step (w and v are vmapped knobs, so
they cannot switch code paths): guided (w = 1) and Neon (v = 1, w = 0) cost the same.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import scl.catalog  # noqa: F401
from scl.config import Config
from scl.data import make_source
from scl.families import make_family
from scl.options import knob_values


def config(family, **model):
    extra = {"width": 128, "depth": 3, "steps": 50} if family == "diffusion" else {}
    return Config.from_dict(dict(
        seeds=1, truth={"kind": "gaussian", "dim": 2},
        model={"family": family, "sampler": "ddim", "sample_steps": 100, **extra, **model},
        loop={"n": 512, "generations": 1}, run={"progress": False}))


def timed(fn, repeats):
    jax.block_until_ready(fn(jax.random.PRNGKey(0)))           # compile
    t = time.perf_counter()
    for i in range(repeats):
        jax.block_until_ready(fn(jax.random.PRNGKey(i + 1)))
    return (time.perf_counter() - t) / repeats


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=4096)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    print(f"backend {jax.default_backend()}, {args.n} samples, 100 DDIM steps, dim 2")
    for family in ("diffusion", "analytic_diffusion"):
        cfg = config(family, aux_samples=256, aux_steps=20)
        source = make_source(cfg.truth)
        fam = make_family(cfg.model, source)
        plain_cfg = config(family)
        plain = make_family(plain_cfg.model, source)
        x = source.sample(jax.random.PRNGKey(0), 512)
        state = jax.jit(fam.init)(jax.random.PRNGKey(1), x, jnp.ones(512), knob_values(cfg.model))
        k0 = knob_values(cfg.model)
        runs = {
            "plain": (plain, state.base, knob_values(plain_cfg.model)),
            "guided": (fam, state, {**k0, "sims_weight": 1.0}),
            "neon": (fam, state, {**k0, "neon_weight": 1.0}),
        }
        figures = {}
        for name, (f, s, k) in runs.items():
            sample = jax.jit(lambda key, s=s, k=k, f=f: f.sample(key, s, args.n, k))
            figures[name] = timed(sample, args.repeats)
        print(f"{family:20s} " + "  ".join(f"{k} {v * 1e3:8.2f} ms" for k, v in figures.items())
              + f"  guided/plain {figures['guided'] / figures['plain']:.2f}")


if __name__ == "__main__":
    main()
