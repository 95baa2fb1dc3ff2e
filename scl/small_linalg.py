"""Linear algebra on tiny matrices (d <= 4) written as elementwise arithmetic.

Under vmap over thousands of configurations, XLA's CPU backend runs a batched LAPACK call or a
batched dot as a loop over the batch, and its rounding can depend on the batch size. These
unrolled forms vectorise across configurations and round the same at every batch size (a
configuration gives the same bits alone and inside a sweep). Larger matrices fall back to
``jnp.linalg`` / ``jnp.matmul``.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

UNROLL = 4


def matmul(a, b):
    """a [..., i, k] @ b [..., k, j]."""
    if a.shape[-1] > UNROLL:
        return a @ b
    # an explicit sum over k (not jnp.sum): elementwise adds fuse with their neighbours, where a
    # reduction over a size-2 axis becomes its own kernel with a fixed cost per call
    terms = [a[..., :, k, None] * b[..., None, k, :] for k in range(a.shape[-1])]
    return sum(terms[1:], terms[0])


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


def lower_triangular(below, diag):
    """[d, d] lower-triangular matrix from its strictly lower entries ``below`` [d(d-1)/2]
    (row-major: (1,0), (2,0), (2,1), ...) and its diagonal ``diag`` [d]."""
    d = diag.shape[-1]
    if d > UNROLL:
        rows, cols = np.tril_indices(d, -1)
        return jnp.diag(diag).at[rows, cols].set(below)
    zero = jnp.zeros((), diag.dtype)
    entry = lambda r, c: below[r * (r - 1) // 2 + c] if c < r else (diag[r] if c == r else zero)
    return jnp.stack([jnp.stack([entry(r, c) for c in range(d)]) for r in range(d)])
