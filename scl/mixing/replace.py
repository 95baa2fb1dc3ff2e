"""replace: generation t trains on ``n`` rows sampled from model t-1 (fully synthetic)."""
from __future__ import annotations

import jax.numpy as jnp

from scl import moments
from scl.mixing.base import Mixer, Regime, StatisticsMixer, plain_init, present
from scl.registry import register_regime


@register_regime("replace", statistics=True, synthetic_rows_are_n=True)
def make_replace(loop, ctx) -> Regime:
    """n synthetic rows (fully synthetic)."""
    n = ctx.n

    def mix(key, state, fresh, syn, knobs, t, w_syn=None):
        return state, syn, present(w_syn, n)

    def mix_statistics(key, s, model, kn):
        return s, moments.draw(key, *model, jnp.float32(n))

    return Regime(Mixer(plain_init, mix, n, 0), StatisticsMixer(lambda real: (), mix_statistics))
