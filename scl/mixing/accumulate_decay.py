"""accumulate_decay: the n real rows + every synthetic batch so far, older batches cut short.

The down-weighted accumulation of the Gaussian toy of *Self-Correcting Self-Consuming Loops*
(Gillman et al., ICML 2024; their public code): when generation t's model is trained, the
synthetic batch added at generation b (1 <= b <= t, sampled from model b-1) keeps only its first
``decay_kept_rows(b, t, m)`` = floor(b m / t) of its m rows, so older batches fade while the
real rows always stay.
The pool stores every batch whole at a fixed place; the training set is gathered from it with the
rows present first (real rows, then the kept rows of batch 1, 2, ...).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from scl.mixing.base import Mixer, Regime, first, present, source_weights
from scl.registry import register_regime


def decay_kept_rows(b, t, m: int):
    """Rows kept of the synthetic batch added at generation b when training generation t >= b:
    floor(b m / t), so the newest batch (b = t) is whole and batch 1 keeps floor(m / t).

    The paper code (exp_scripts/gaussian_toy_example.py) computes int(((i + 1) / G) * m) with a
    0-based i = b - 1 and G = t in float64: equal to this exact floor for its m = 25 at every
    t <= 2000; for some other (m, t) the float expression rounds an exact integer down by one
    (m = 22, t = 22, b = 15 gives 14, not 15). b, t: int arrays or ints."""
    b = jnp.asarray(b, jnp.int32)
    t = jnp.maximum(jnp.asarray(t, jnp.int32), 1)
    return jnp.minimum(m, (b * m) // t)


class DecayPool(NamedTuple):
    x: object            # [n + G m, ...] real rows, then batch b at rows n + (b-1) m .. n + b m - 1
    present: jax.Array   # [G] int32: rows present in batch b (kept rows first; 0 before it is made)


@register_regime("accumulate_decay", real_rows=True)
def make_accumulate_decay(loop, ctx) -> Regime:
    """Real rows + every synthetic batch so far, batch b cut to decay_kept_rows(b, t, m) rows."""
    n, m, G = ctx.n, ctx.m, ctx.generations
    capacity = n + G * m
    batches = jnp.arange(1, G + 1)

    def init(key, real):
        x = jax.tree_util.tree_map(lambda r: jnp.zeros((capacity,) + r.shape[1:], r.dtype).at[:n].set(r), real)
        return DecayPool(x, jnp.zeros((G,), jnp.int32)), x, first(n, capacity)

    def mix(key, pool, fresh_real, syn, knobs, t, w_syn=None):
        offset = n + (t - 1) * m
        x = jax.tree_util.tree_map(
            lambda a, s: jax.lax.dynamic_update_slice_in_dim(a, s.astype(a.dtype), offset, 0), pool.x, syn)
        count = jnp.sum(present(w_syn, m)).astype(jnp.int32)
        pool = DecayPool(x, pool.present.at[t - 1].set(count))
        keep = jnp.where(batches <= t, jnp.minimum(pool.present, decay_kept_rows(batches, t, m)), 0)   # [G]
        ends = jnp.cumsum(keep)                                   # training rows n + ends[b-1] end batch b
        j = jnp.arange(capacity - n)                              # synthetic slots of the training set
        b = jnp.minimum(jnp.searchsorted(ends, j, side="right"), G - 1)   # 0-based batch of slot j
        source = n + b * m + (j - (ends[b] - keep[b]))
        idx = jnp.concatenate([jnp.arange(n), jnp.where(j < ends[-1], source, 0)])
        rows = jax.tree_util.tree_map(lambda a: a[idx], x)
        return pool, rows, source_weights(first(n + ends[-1], capacity), jnp.arange(capacity) < n, knobs)

    return Regime(Mixer(init, mix, m, 0))
