"""Helpers shared by families whose training sets are weighted rows in fixed-capacity buffers."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.errors import ConfigError


def present_count(w):
    """Number of rows present in a mixer's training set, w [N] = 1 on rows [0, c), 0 after: c by
    bisection on w > 0 (log2 N reads, no pass over the buffer)."""
    N = w.shape[0]

    def halve(_, bounds):                   # invariant: w[lo - 1] > 0 (or lo = 0), w[hi] = 0 (or hi = N)
        lo, hi = bounds
        mid = (lo + hi) // 2
        present = (mid < hi) & (w[jnp.minimum(mid, N - 1)] > 0)
        return jnp.where(present, mid + 1, lo), jnp.where(present, hi, mid)

    lo, _ = jax.lax.fori_loop(0, max(1, N.bit_length()), halve, (jnp.int32(0), jnp.int32(N)), unroll=True)
    return lo


def pick_rows(key, w, n: int, block: int = 16):
    """[n] int indices drawn i.i.d. with probability proportional to the weights w [N] >= 0.

    Two-level inverse-CDF sampling: the cdf over blocks of ``block`` rows picks a block, then the
    cdf inside the n chosen blocks picks the row. Work O(N + N/block + n block) with no cumulative
    sum over all N rows (slow on CPU), so a large, mostly empty accumulate buffer costs one
    reduction over it. Zero-weight rows are never picked.
    """
    N = w.shape[0]
    if N <= 4 * block:
        return inverse_cdf(weights_cdf(w), jax.random.uniform(key, (n,)))
    blocks = -(-N // block)
    wb = jnp.pad(w, (0, blocks * block - N)).reshape(blocks, block)
    outer = weights_cdf(jnp.sum(wb, 1))                                   # [blocks]
    ku, kv = jax.random.split(key)
    b = inverse_cdf(outer, jax.random.uniform(ku, (n,)))                  # [n] block of each draw
    inner = jax.vmap(weights_cdf)(wb[b])                                  # [n, block]
    r = jax.vmap(inverse_cdf)(inner, jax.random.uniform(kv, (n,)))        # [n] row inside the block
    return jnp.minimum(b * block + r, N - 1)


def weights_cdf(w):
    """[N] unnormalised cdf of weights w [N] >= 0 in which a zero-weight row repeats its
    predecessor's value exactly (-inf before the first positive row).

    A parallel prefix sum rounds differently from index to index, so cumsum alone can
    step up at a zero weight and let a draw land on an empty row; a running max is exact.
    """
    axis = w.ndim - 1
    cdf = jax.lax.associative_scan(jnp.add, w, axis=axis)   # log-depth scan: faster than cumsum on CPU
    return jax.lax.associative_scan(jnp.maximum, jnp.where(w > 0, cdf, -jnp.inf), axis=axis)


def inverse_cdf(cdf, u):
    """[n] indices i with cdf[i-1] <= u * total < cdf[i] for an unnormalised cdf [N], u [n] in [0, 1).

    u * total can round up to total in float32; it is capped just below it, so a zero-weight row
    at the end of the buffer can never be returned.
    """
    total = jnp.max(cdf)
    v = jnp.minimum(u * total, jnp.nextafter(total, jnp.zeros_like(total)))
    return jnp.clip(jnp.searchsorted(cdf, v, side="right"), 0, cdf.shape[0] - 1)


def effective_size(w):
    """Kish effective sample size (sum w)^2 / sum w^2; the row count for 0/1 weights."""
    return jnp.sum(w) ** 2 / jnp.maximum(jnp.sum(w ** 2), 1e-30)


def truth_rows(truth) -> str:
    """What a truth's rows are: 'vector' ([n, dim]), 'categorical', 'regression' or 'image'
    ({"x": [n, D], "y": [n]}, scl.data.images)."""
    return getattr(truth, "rows", "vector")


def require_rows(cfg, wanted: str, family: str):
    """ConfigError naming ``truth.kind`` unless the truth's rows are of the kind ``family`` fits."""
    got = truth_rows(cfg.truth)
    if got != wanted:
        raise ConfigError("truth.kind", f"model.family {family!r} needs a truth with {wanted} rows; "
                          f"{cfg.truth.name!r} has {got} rows")
