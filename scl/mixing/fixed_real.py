"""fixed_real: generation 0's n real rows, kept fixed, + round(lambda n) rows from model t-1
(lambda = ``loop.lam``, or (1 - f) / f from ``loop.real_fraction``; capacity: the largest
lambda of the sweep)."""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from scl import moments
from scl.errors import ConfigError
from scl.mixing.base import Mixer, Regime, StatisticsMixer, combine_sources, concat, first, ones, present, source_weights
from scl.registry import register_regime


def fixed_real_synthetic_count(knobs, n: int):
    """round(lambda n): the synthetic rows next to ``fixed_real``'s n real rows."""
    return jnp.round(knobs["lam"] * n)


def _check(loop, path):
    if (loop.real_fraction is None) == (loop.lam is None):
        raise ConfigError(f"{path}.lam", "regime 'fixed_real' needs exactly one of lam (>= 0) or real_fraction (> 0)")
    if loop.real_fraction is not None and loop.real_fraction == 0.0:
        raise ConfigError(f"{path}.real_fraction",
                          "must be > 0 under fixed_real (lambda = (1-f)/f); use regime: replace")


@register_regime("fixed_real", check=_check, statistics=True, capacity_from_lam=True, real_rows=True)
def make_fixed_real(loop, ctx) -> Regime:
    """The fixed real set + round(lambda n) synthetic rows."""
    n = ctx.n
    capacity = max(1, int(math.ceil(ctx.lam_max * n - 1e-9)))

    def init(key, real):
        pad = jax.tree_util.tree_map(lambda r: jnp.zeros((capacity,) + r.shape[1:], r.dtype), real)
        w = jnp.concatenate([ones(real), jnp.zeros((capacity,), jnp.float32)])
        return real, concat(real, pad), w

    def mix(key, real, fresh_real, syn, knobs, t, w_syn=None):
        k = fixed_real_synthetic_count(knobs, n)
        w = jnp.concatenate([jnp.ones((n,), jnp.float32), first(k, capacity) * present(w_syn, capacity)])
        return real, concat(real, syn), source_weights(w, jnp.arange(n + capacity) < n, knobs)

    def mix_statistics(key, s, model, kn):
        return s, combine_sources(s, moments.draw(key, *model, fixed_real_synthetic_count(kn, n)), kn)

    statistics = StatisticsMixer(lambda real: moments.of_rows(real, jnp.ones((n,), jnp.float32)), mix_statistics)
    return Regime(Mixer(init, mix, capacity, 0), statistics)
