"""fresh: row i of generation t's n rows is a fresh real row for i < round(f n), else a row
sampled from model t-1 (f = ``loop.real_fraction``, a knob)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl import moments
from scl.errors import ConfigError
from scl.mixing.base import Mixer, Regime, StatisticsMixer, combine_sources, plain_init, present, source_weights
from scl.registry import register_regime
from scl.small_linalg import cholesky


def fresh_real_count(knobs, n: int):
    """round(f n): the fresh real rows of a ``fresh`` training set of n rows."""
    return jnp.round(knobs["real_fraction"] * n)


def _check(loop, path):
    if loop.real_fraction is None:
        raise ConfigError(f"{path}.real_fraction", "regime 'fresh' needs a real_fraction in [0, 1]")


@register_regime("fresh", check=_check, statistics=True, synthetic_rows_are_n=True, fresh_real=True,
                 real_rows=True)
def make_fresh(loop, ctx) -> Regime:
    """round(f n) fresh real rows, then synthetic rows: n rows in all."""
    n = ctx.n

    def mix(key, state, fresh_real, syn, knobs, t, w_syn=None):
        real_row = jnp.arange(n) < fresh_real_count(knobs, n)
        x = jax.tree_util.tree_map(
            lambda r, s: jnp.where(real_row.reshape((n,) + (1,) * (r.ndim - 1)), r, s.astype(r.dtype)),
            fresh_real, syn)
        # synthetic row i sits at index i: with all present, the whole set is present
        return state, x, source_weights(jnp.where(real_row, 1.0, present(w_syn, n)), real_row, knobs)

    statistics = None
    if ctx.source is not None and ctx.source.gaussian is not None:
        truth_mean, truth_cov = ctx.source.gaussian
        truth_root = cholesky(truth_cov)

        def mix_statistics(key, s, model, kn):
            k = fresh_real_count(kn, n)
            real, syn = moments.draw_sets(key, [(truth_mean, truth_root, k), (*model, n - k)])
            return s, combine_sources(real, syn, kn)
        statistics = StatisticsMixer(lambda real: (), mix_statistics)

    return Regime(Mixer(plain_init, mix, n, n), statistics)
