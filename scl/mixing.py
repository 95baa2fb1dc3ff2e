"""Mixing regimes: how each generation's training set is built from real and synthetic rows.

Conventions (also in the README):

* ``real_fraction`` f in [0, 1]: share of real rows in a generation's training set.
* ``lam`` (Bertrand et al., ICLR 2024) = #synthetic / #real. f and lambda convert as
  lambda = (1 - f) / f and f = 1 / (1 + lambda); real rows carry total weight 1/(1+lambda).
* Generation 0 is always the fit on ``n`` real rows. Generation t >= 1 trains on:

  replace               ``n`` rows sampled from model t-1 (fully synthetic).
  fresh                 round(f n) fresh real rows + (n - round(f n)) rows from model t-1
                        (row i is real for i < round(f n), synthetic after: n rows in all).
  fixed_real            the n real rows of generation 0 (kept fixed) + round(lambda n) rows from
                        model t-1 (capacity: the largest lambda in the sweep).
  accumulate            the n real rows + every synthetic batch so far (``synthetic_size`` rows
                        from each of models 0 .. t-1): n + t m rows.
  accumulate_subsample  n rows drawn uniformly without replacement from the accumulate pool.

Shapes are fixed: variable counts are 0/1 row weights in fixed-capacity buffers, so every regime
vmaps over its knobs. The rows present always come first: a training set's weights are 1 on rows
[0, sum(w)) and 0 after, and families may rely on it (a uniform row pick is a uniform integer).
``init`` returns generation 0's training set in the same shape as ``mix`` does (real rows first,
zero-weight padding after), so a family whose state stores its training rows (a KDE) keeps one
state shape across generations. Rows may be arrays [N, d] or pytrees of arrays with leading
axis N.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from scl.rng import uniform_below

tree_map = jax.tree_util.tree_map


class Mixer(NamedTuple):
    """init(key, real) -> (mix_state, x, w)        generation 0's training set (the real rows)
    mix(key, mix_state, fresh_real, synthetic, knobs, t) -> (mix_state, x, w)   generation t >= 1

    synthetic_rows: rows sampled from the model each generation.
    fresh_real_rows: fresh truth rows drawn each generation (0: none, ``fresh_real`` is None).
    state_is_training_set: the state is a Pool equal to the (x, w) that mix returns
        (accumulate; a Pool stores the count of rows written, not w), so a family that stores its
        training rows can hold it for both.
    """

    init: Callable
    mix: Callable
    synthetic_rows: int
    fresh_real_rows: int
    state_is_training_set: bool = False


def _concat(a, b):
    return tree_map(lambda u, v: jnp.concatenate([u, v], 0), a, b)


def _count(tree) -> int:
    return jax.tree_util.tree_leaves(tree)[0].shape[0]


def _ones(tree):
    return jnp.ones((_count(tree),), jnp.float32)


def _first(k, size):
    """[size] 0/1 weights marking the first k rows."""
    return (jnp.arange(size) < k).astype(jnp.float32)


def _plain_init(key, real):
    return (), real, _ones(real)


def replace(n: int) -> Mixer:
    def mix(key, state, fresh, syn, knobs, t):
        return state, syn, _ones(syn)
    return Mixer(_plain_init, mix, n, 0)


def fresh_real_count(knobs, n: int):
    """round(f n): the fresh real rows of a ``fresh`` training set of n rows."""
    return jnp.round(knobs["real_fraction"] * n)


def fixed_real_synthetic_count(knobs, n: int):
    """round(lambda n): the synthetic rows next to ``fixed_real``'s n real rows."""
    return jnp.round(knobs["lam"] * n)


def fresh(n: int) -> Mixer:
    """Row i of the training set is fresh real for i < round(f n), synthetic otherwise: n rows."""
    def mix(key, state, fresh_real, syn, knobs, t):
        k = fresh_real_count(knobs, n)
        real_row = jnp.arange(n) < k
        x = tree_map(lambda r, s: jnp.where(real_row.reshape((n,) + (1,) * (r.ndim - 1)), r, s.astype(r.dtype)),
                     fresh_real, syn)
        return state, x, jnp.ones((n,), jnp.float32)
    return Mixer(_plain_init, mix, n, n)


def fixed_real(n: int, lam_max: float) -> Mixer:
    capacity = max(1, int(math.ceil(lam_max * n - 1e-9)))

    def init(key, real):
        pad = tree_map(lambda r: jnp.zeros((capacity,) + r.shape[1:], r.dtype), real)
        w = jnp.concatenate([_ones(real), jnp.zeros((capacity,), jnp.float32)])
        return real, _concat(real, pad), w

    def mix(key, real, fresh_real, syn, knobs, t):
        k = fixed_real_synthetic_count(knobs, n)
        w = jnp.concatenate([jnp.ones((n,), jnp.float32), _first(k, capacity)])
        return real, _concat(real, syn), w
    return Mixer(init, mix, capacity, 0)


class Pool(NamedTuple):
    x: object          # rows, leading axis = capacity
    count: jax.Array   # [] int32: rows [0, count) have been written

    def weights(self):
        """[capacity] 0/1 weights of the rows written (computed, not stored)."""
        return _first(self.count, _count(self.x))


def _pool_init(n: int, m: int, generations: int, padded: bool):
    """Pool of capacity n + generations * m; ``padded``: init returns the whole pool as x."""
    capacity = n + generations * m

    def init(key, real):
        x = tree_map(lambda r: jnp.zeros((capacity,) + r.shape[1:], r.dtype).at[:n].set(r), real)
        pool = Pool(x, jnp.int32(n))
        if padded:
            return pool, x, pool.weights()
        return pool, real, _ones(real)

    def add(pool, syn, t):
        offset = n + (t - 1) * m
        x = tree_map(lambda p, s: jax.lax.dynamic_update_slice_in_dim(p, s.astype(p.dtype), offset, 0),
                     pool.x, syn)
        return Pool(x, jnp.asarray(offset + m, jnp.int32))

    return init, add


def accumulate(n: int, m: int, generations: int) -> Mixer:
    init, add = _pool_init(n, m, generations, padded=True)

    def mix(key, pool, fresh_real, syn, knobs, t):
        pool = add(pool, syn, t)
        return pool, pool.x, pool.weights()
    return Mixer(init, mix, m, 0, state_is_training_set=True)


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


def accumulate_subsample(n: int, m: int, generations: int) -> Mixer:
    init, add = _pool_init(n, m, generations, padded=False)

    def mix(key, pool, fresh_real, syn, knobs, t):
        pool = add(pool, syn, t)
        idx = distinct_indices(key, pool.count, n, _count(pool.x))   # the pool fills in order
        x = tree_map(lambda p: p[idx], pool.x)
        return pool, x, jnp.ones((n,), jnp.float32)
    return Mixer(init, mix, m, 0)


def make_mixer(loop, lam_max: float = 0.0) -> Mixer:
    """Mixer for ``loop`` (a LoopConfig). ``lam_max``: largest lambda of a fixed_real sweep."""
    n, m, g = loop.n, loop.synthetic_rows, loop.generations
    if loop.regime == "replace":
        return replace(n)
    if loop.regime == "fresh":
        return fresh(n)
    if loop.regime == "fixed_real":
        return fixed_real(n, max(lam_max, loop.lam_value))
    if loop.regime == "accumulate":
        return accumulate(n, m, g)
    if loop.regime == "accumulate_subsample":
        return accumulate_subsample(n, m, g)
    raise ValueError(loop.regime)
