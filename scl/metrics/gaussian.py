"""Closed-form metrics between a Gaussian model and a Gaussian truth.

Each ``make(ctx)`` returns ``fn(key, model_state, knobs) -> scalar``.
"""
from __future__ import annotations

import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


def sqrtm_psd(a):
    """Symmetric square root of a PSD matrix [d, d] via eigh."""
    vals, vecs = jnp.linalg.eigh(a)
    return (vecs * jnp.sqrt(jnp.clip(vals, 0.0))) @ vecs.T


def gaussian_w2(m1, c1, m2, c2):
    """2-Wasserstein distance between N(m1, c1) and N(m2, c2) (Bures formula)."""
    r2 = sqrtm_psd(c2)
    cross = sqrtm_psd(r2 @ c1 @ r2)
    sq = jnp.sum((m1 - m2) ** 2) + jnp.trace(c1) + jnp.trace(c2) - 2 * jnp.trace(cross)
    return jnp.sqrt(jnp.clip(sq, 0.0))


def _both_gaussian(ctx, name):
    require(ctx.family.gaussian is not None, name, "a Gaussian model family (model.family: gaussian)")
    require(ctx.source.gaussian is not None, name, "a Gaussian truth (truth.kind: gaussian)")
    return ctx.source.gaussian


@register_metric("w2", doc="closed-form 2-Wasserstein distance to the Gaussian truth")
def make_w2(ctx):
    m0, c0 = _both_gaussian(ctx, "w2")
    return lambda key, s, knobs: gaussian_w2(*ctx.family.gaussian(s), m0, c0)


@register_metric("mean_sqerr", doc="squared error of the mean, |mu_t - mu_0|^2")
def make_mean_sqerr(ctx):
    m0, _ = _both_gaussian(ctx, "mean_sqerr")
    return lambda key, s, knobs: jnp.sum((ctx.family.gaussian(s)[0] - m0) ** 2)


@register_metric("trace_ratio", doc="tr(Sigma_t) / tr(Sigma_0): 1 = right spread, 0 = collapsed")
def make_trace_ratio(ctx):
    _, c0 = _both_gaussian(ctx, "trace_ratio")
    return lambda key, s, knobs: jnp.trace(ctx.family.gaussian(s)[1]) / jnp.trace(c0)


@register_metric("logdet_ratio", doc="log det Sigma_t - log det Sigma_0 (-inf when collapsed)")
def make_logdet_ratio(ctx):
    _, c0 = _both_gaussian(ctx, "logdet_ratio")
    ref = jnp.linalg.slogdet(c0)[1]
    return lambda key, s, knobs: jnp.linalg.slogdet(ctx.family.gaussian(s)[1])[1] - ref
