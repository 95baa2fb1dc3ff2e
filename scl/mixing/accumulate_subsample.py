"""accumulate_subsample: n rows drawn uniformly without replacement from the accumulate pool."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.mixing.base import Mixer, Regime, pool, row_count, source_weights
from scl.registry import register_regime
from scl.rng import uniform_below


def distinct_indices(key, count, k: int, capacity: int):
    """[k] distinct integers drawn uniformly (as a set) from [0, count), count >= k traced,
    count <= ``capacity`` (static).

    Floyd's algorithm: for j = count-k .. count-1 draw r ~ U{0..j}; keep r unless already taken,
    else keep j. The k draws are exact bounded integers (scl.rng.uniform_below), made before the
    loop; a bitmap of ``capacity`` bits answers "already taken" in O(1), independent of the
    buffer size.
    """
    top = count - k + jnp.arange(k)                       # j for each step
    draws = uniform_below(key, top + 1, (k,))

    def body(i, carry):
        chosen, bits = carry
        r = draws[i]
        pick = jnp.where((bits[r >> 5] >> (r & 31).astype(jnp.uint32)) & 1, top[i], r)
        # pick is never taken yet, so adding its bit sets it (one scatter, no second read)
        bits = bits.at[pick >> 5].add(jnp.uint32(1) << (pick & 31).astype(jnp.uint32))
        return chosen.at[i].set(pick), bits

    start = (jnp.full((k,), -1, jnp.int32), jnp.zeros((-(-capacity // 32),), jnp.uint32))
    return jax.lax.fori_loop(0, k, body, start, unroll=4)[0]


@register_regime("accumulate_subsample", real_rows=True)
def make_accumulate_subsample(loop, ctx) -> Regime:
    """A uniform n-subset of every row ever made."""
    n = ctx.n
    init, add = pool(n, ctx.m, ctx.generations, padded=False)

    def mix(key, p, fresh_real, syn, knobs, t, w_syn=None):
        p = add(p, syn, w_syn)
        idx = distinct_indices(key, p.count, n, row_count(p.x))   # the pool fills in order
        x = jax.tree_util.tree_map(lambda a: a[idx], p.x)
        return p, x, source_weights(jnp.ones((n,), jnp.float32), idx < n, knobs)

    return Regime(Mixer(init, mix, ctx.m, 0))
