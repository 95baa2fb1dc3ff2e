"""Closed-form metrics between a Gaussian model and a Gaussian truth.

Each ``make(ctx)`` returns ``fn(probe, model_state, knobs) -> scalar`` (the probe is unused).
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from scl.metrics.base import require
from scl.small_linalg import matmul
from scl.registry import register_metric


def sqrtm_psd(a):
    """Symmetric square root of a PSD matrix [d, d] via eigh."""
    vals, vecs = jnp.linalg.eigh(a)
    return (vecs * jnp.sqrt(jnp.clip(vals, 0.0))) @ vecs.T


def trace_sqrtm_psd(a):
    """tr(A^{1/2}) of a PSD matrix [d, d]; closed form for d <= 2 (no eigendecomposition):
    for 2x2, (tr A^{1/2})^2 = tr A + 2 sqrt(det A)."""
    d = a.shape[-1]
    if d == 1:
        return jnp.sqrt(jnp.clip(a[0, 0], 0.0))
    if d == 2:
        det = jnp.clip(a[0, 0] * a[1, 1] - a[0, 1] * a[1, 0], 0.0)
        return jnp.sqrt(jnp.clip(a[0, 0] + a[1, 1] + 2 * jnp.sqrt(det), 0.0))
    return jnp.sum(jnp.sqrt(jnp.clip(jnp.linalg.eigvalsh(a), 0.0)))


def gaussian_w2(m1, c1, m2, c2, root_c2=None):
    """2-Wasserstein distance between N(m1, c1) and N(m2, c2) (Bures formula).
    ``root_c2``: c2^{1/2} if already known (the truth's is computed once)."""
    d = m1.shape[-1]
    if d <= 2:
        # the eigenvalues of c2^1/2 c1 c2^1/2 are those of c1 c2: for 2x2, its trace (sum of the
        # elementwise product, both symmetric) and determinant det c1 det c2 give tr of the root
        det2 = lambda c: c[0, 0] * c[1, 1] - c[0, 1] * c[1, 0]
        tr, det = jnp.sum(c1 * c2), (det2(c1) * det2(c2) if d == 2 else 0.0)
        cross = jnp.sqrt(jnp.clip(tr + 2 * jnp.sqrt(jnp.clip(det, 0.0)), 0.0))
    else:
        r2 = sqrtm_psd(c2) if root_c2 is None else root_c2
        cross = trace_sqrtm_psd(matmul(matmul(r2, c1), r2))
    sq = jnp.sum((m1 - m2) ** 2) + jnp.trace(c1) + jnp.trace(c2) - 2 * cross
    return jnp.sqrt(jnp.clip(sq, 0.0))


def _both_gaussian(ctx, name):
    require(ctx.family.gaussian is not None, name, "a Gaussian model family (model.family: gaussian)")
    require(ctx.source.gaussian is not None, name, "a Gaussian truth (truth.kind: gaussian)")
    return ctx.source.gaussian


@register_metric("w2", doc="closed-form 2-Wasserstein distance to the Gaussian truth",
                 long_name="W2 distance to the truth", units="1")
def make_w2(ctx):
    m0, c0 = _both_gaussian(ctx, "w2")
    vals, vecs = np.linalg.eigh(np.asarray(c0, np.float64))
    root = jnp.asarray((vecs * np.sqrt(np.clip(vals, 0, None))) @ vecs.T, jnp.float32)
    return lambda probe, s, knobs: gaussian_w2(*ctx.family.gaussian(s), m0, c0, root)


@register_metric("mean_sqerr", doc="squared error of the mean, |mu_t - mu_0|^2",
                 long_name="squared error of the mean |μ − μ₀|²", units="1")
def make_mean_sqerr(ctx):
    m0, _ = _both_gaussian(ctx, "mean_sqerr")
    return lambda probe, s, knobs: jnp.sum((ctx.family.gaussian(s)[0] - m0) ** 2)


@register_metric("trace_ratio", doc="tr(Sigma_t) / tr(Sigma_0): 1 = right spread, 0 = collapsed",
                 long_name="covariance trace ratio tr Σ / tr Σ₀", units="1")
def make_trace_ratio(ctx):
    _, c0 = _both_gaussian(ctx, "trace_ratio")
    return lambda probe, s, knobs: jnp.trace(ctx.family.gaussian(s)[1]) / jnp.trace(c0)


def _two_product(x, y):
    """(p, e) with p = fl(x y) and p + e = x y exactly (Dekker: Veltkamp splitting, float32)."""
    def split(v):
        t = v * 4097.0                       # 2^12 + 1: halves of 12 significant bits
        hi = t - (t - v)
        return hi, v - hi
    p = x * y
    xh, xl = split(x)
    yh, yl = split(y)
    return p, ((xh * yh - p) + xh * yl + xl * yh) + xl * yl


def logdet_psd(c):
    """log det of a covariance c [d, d] in float32: -inf when a variance has collapsed to 0
    (det 0 by definition), NaN when c is not positive semi-definite.

    d = 1: log c. d = 2: det = ac - b^2 with both products exact (two-product), so the only
    rounding is that of the difference: within 1e-6 of float64 up to condition numbers ~1e9,
    where slogdet's LU erred by 0.1 in median (up to 1) at condition ~1e8 and a float32 Cholesky
    failed (NaN) on 12% of such positive definite matrices. d >= 3: 2 sum log diag of the
    Cholesky factor (NaN where the float32 factorisation fails)."""
    d = c.shape[-1]
    diag = jnp.diagonal(c)
    negative = jnp.any(diag < 0)
    if d == 1:
        return jnp.log(c[0, 0])                                   # log 0 = -inf, log(< 0) = NaN
    if d == 2:
        p, ep = _two_product(c[0, 0], c[1, 1])
        q, eq = _two_product(c[0, 1], c[1, 0])
        det = (p - q) + (ep - eq)
        return jnp.where(negative, jnp.nan, jnp.log(det))        # det 0 -> -inf, det < 0 -> NaN
    collapsed = jnp.any((diag == 0) & jnp.all(c == 0, axis=-1))   # a zero variance, its row zero
    chol = jnp.linalg.cholesky(c)
    value = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return jnp.where(negative, jnp.nan, jnp.where(collapsed, -jnp.inf, value))


@register_metric("logdet_ratio", doc="log det Sigma_t - log det Sigma_0 (-inf when the variance has collapsed "
                 "to 0, by definition; NaN when the state is not positive semi-definite)",
                 long_name="log det Σ − log det Σ₀", units="1")
def make_logdet_ratio(ctx):
    """log det Sigma_t - log det Sigma_0 (:func:`logdet_psd`; the truth's in float64): -inf when
    the variance has collapsed to 0 (by definition); NaN when the state is not positive
    semi-definite."""
    _, c0 = _both_gaussian(ctx, "logdet_ratio")
    ref = jnp.float32(np.linalg.slogdet(np.asarray(c0, np.float64))[1])
    return lambda probe, s, knobs: logdet_psd(ctx.family.gaussian(s)[1]) - ref
