"""What a mixing regime is, and the buffer helpers the regimes share."""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp

from scl import moments

tree_map = jax.tree_util.tree_map


class Mixer(NamedTuple):
    """The row form of a regime.

    init(key, real) -> (mix_state, x, w)        generation 0's training set (the real rows)
    mix(key, mix_state, fresh_real, synthetic, knobs, t, w_syn=None) -> (mix_state, x, w)
        generation t >= 1; ``w_syn`` [synthetic_rows] 0/1 weights of the synthetic rows (kept
        rows first; None: all present).

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


class StatisticsMixer(NamedTuple):
    """The sufficient-statistics form of a regime (exact for Gaussian fits, scl.moments).

    init(real [n, d]) -> mix_state                       after generation 0's fit on n real rows
    mix(key, mix_state, model (mean [d], root [d, d]), loop_knobs) -> (mix_state, Moments)
        generation t >= 1: the statistics of its whole training set, the model's rows drawn from
        N(mean, root root^T)
    """

    init: Callable
    mix: Callable


class Regime(NamedTuple):
    rows: Mixer
    statistics: Optional[StatisticsMixer] = None


class RegimeContext(NamedTuple):
    """Static facts a regime is built from."""

    n: int                 # real rows (generation 0's training set)
    m: int                 # synthetic rows per generation
    generations: int
    lam_max: float = 0.0   # the largest lambda of the sweep (fixed_real's capacity)
    source: Any = None     # the truth (a regime drawing fresh real statistics reads source.gaussian)


def concat(a, b):
    return tree_map(lambda u, v: jnp.concatenate([u, v], 0), a, b)


def row_count(tree) -> int:
    return jax.tree_util.tree_leaves(tree)[0].shape[0]


def ones(tree):
    return jnp.ones((row_count(tree),), jnp.float32)


def first(k, size):
    """[size] 0/1 weights marking the first k rows."""
    return (jnp.arange(size) < k).astype(jnp.float32)


def present(w_syn, rows: int):
    """Weights of synthetic rows: ``w_syn`` or, when None, all ones [rows]."""
    return jnp.ones((rows,), jnp.float32) if w_syn is None else w_syn


def source_weights(w, real, knobs):
    """Per-source loss weights (``loop.real_weight`` = s): w [N] 0/1 weights of the rows present,
    real [N] bool marking the real rows. With s set (``knobs["real_weight_set"]`` = 1), the real
    rows present share the total weight s * N_p and the synthetic ones (1 - s) * N_p, whatever
    their counts (N_p = sum(w), so a family's row count stays the rows present; a source with no
    row present leaves its share to the other); unset (or knobs without it): w unchanged."""
    if "real_weight_set" not in knobs:          # a caller building knobs by hand
        return w
    total = jnp.sum(w)
    n_real = jnp.sum(jnp.where(real, w, 0.0))
    n_syn = total - n_real
    share = jnp.where(n_syn > 0, jnp.where(n_real > 0, knobs["real_weight"], 0.0), 1.0)
    per_row = jnp.where(real, share * total / jnp.maximum(n_real, 1e-30),
                        (1.0 - share) * total / jnp.maximum(n_syn, 1e-30))
    return jnp.where(knobs["real_weight_set"] > 0, w * per_row, w)


def combine_sources(real, syn, knobs):
    """The statistics form of :func:`source_weights`: Moments of real rows ``real`` and synthetic
    rows ``syn`` combined, reweighted to the shares of ``loop.real_weight`` when it is set."""
    if "real_weight_set" not in knobs:
        return moments.combine(real, syn)
    weighted = moments.combine_shares(real, syn, knobs["real_weight"])
    plain = moments.combine(real, syn)
    return tree_map(lambda u, v: jnp.where(knobs["real_weight_set"] > 0, u, v), weighted, plain)


def plain_init(key, real):
    return (), real, ones(real)


class Pool(NamedTuple):
    x: object          # rows, leading axis = capacity
    count: jax.Array   # [] int32: rows [0, count) have been written

    def weights(self):
        """[capacity] 0/1 weights of the rows written (computed, not stored)."""
        return first(self.count, row_count(self.x))


def pool(n: int, m: int, generations: int, padded: bool):
    """A Pool of capacity n + generations * m holding the real rows, then every synthetic batch.
    ``init(key, real)``; ``padded``: it returns the whole pool as x. ``add(pool, syn, w_syn)``
    writes a batch's rows after the rows already there and counts its present rows (kept rows
    first), so the pool stays rows-present-first."""
    capacity = n + generations * m

    def init(key, real):
        x = tree_map(lambda r: jnp.zeros((capacity,) + r.shape[1:], r.dtype).at[:n].set(r), real)
        p = Pool(x, jnp.int32(n))
        if padded:
            return p, x, p.weights()
        return p, real, ones(real)

    def add(p, syn, w_syn=None):
        x = tree_map(lambda a, s: jax.lax.dynamic_update_slice_in_dim(a, s.astype(a.dtype), p.count, 0),
                     p.x, syn)
        added = m if w_syn is None else jnp.sum(w_syn).astype(jnp.int32)
        return Pool(x, p.count + added)

    return init, add
