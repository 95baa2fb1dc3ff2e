"""accumulate: the n real rows + every synthetic batch so far (``synthetic_size`` rows from each
of models 0 .. t-1): n + t m rows, in a pool of fixed capacity n + G m."""
from __future__ import annotations

from scl.mixing.base import Mixer, Regime, pool
from scl.registry import register_regime


@register_regime("accumulate")
def make_accumulate(loop, ctx) -> Regime:
    """Every row ever made, real and synthetic."""
    init, add = pool(ctx.n, ctx.m, ctx.generations, padded=True)

    def mix(key, p, fresh_real, syn, knobs, t, w_syn=None):
        p = add(p, syn, w_syn)
        return p, p.x, p.weights()

    return Regime(Mixer(init, mix, ctx.m, 0, state_is_training_set=True))
