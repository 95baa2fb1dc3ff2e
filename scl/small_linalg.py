"""Linear algebra on tiny matrices (d <= 4) written as elementwise arithmetic.

Under vmap over thousands of configurations, XLA's CPU backend runs a batched LAPACK call or a
batched dot as a loop over the batch, and its rounding can depend on the batch size. These
unrolled forms vectorise across configurations and round the same at every batch size (a
configuration gives the same bits alone and inside a sweep). Larger matrices fall back to
``jnp.linalg`` / ``jnp.matmul``.
"""
from __future__ import annotations

import jax.numpy as jnp

UNROLL = 4


def matmul(a, b):
    """a [..., i, k] @ b [..., k, j]."""
    if a.shape[-1] > UNROLL:
        return a @ b
    return jnp.sum(a[..., :, :, None] * b[..., None, :, :], axis=-2)


def cholesky(a):
    """Lower Cholesky factor of a [..., d, d] (Cholesky-Banachiewicz). Where a pivot is not
    positive the affected entries are NaN (``jnp.linalg.cholesky`` makes the whole factor NaN)."""
    d = a.shape[-1]
    if d > UNROLL:
        return jnp.linalg.cholesky(a)
    low = [[jnp.zeros(a.shape[:-2], a.dtype)] * d for _ in range(d)]
    for j in range(d):
        low[j][j] = jnp.sqrt(a[..., j, j] - sum((low[j][k] ** 2 for k in range(j)), 0.0))
        for i in range(j + 1, d):
            low[i][j] = (a[..., i, j] - sum((low[i][k] * low[j][k] for k in range(j)), 0.0)) / low[j][j]
    return jnp.stack([jnp.stack(row, -1) for row in low], -2)
