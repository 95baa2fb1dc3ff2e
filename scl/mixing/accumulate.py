"""accumulate: the n real rows + every synthetic batch so far (``synthetic_size`` rows from each
of models 0 .. t-1): n + t m rows, in a pool of fixed capacity n + G m."""
from __future__ import annotations

import jax.numpy as jnp

from scl.mixing.base import Mixer, Regime, pool, row_count, source_weights
from scl.registry import register_regime


@register_regime("accumulate", real_rows=True)
def make_accumulate(loop, ctx) -> Regime:
    """Every row ever made, real and synthetic."""
    init, add = pool(ctx.n, ctx.m, ctx.generations, padded=True)

    def mix(key, p, fresh_real, syn, knobs, t, w_syn=None):
        p = add(p, syn, w_syn)
        return p, p.x, source_weights(p.weights(), jnp.arange(row_count(p.x)) < ctx.n, knobs)

    return Regime(Mixer(init, mix, ctx.m, 0, state_is_training_set=True))
