"""Sample-based distances for any family: sliced Wasserstein, MMD, Sinkhorn divergence (ott-jax).

Each compares the probe's ``metrics.samples`` model rows with its as many fresh truth rows
(scl.probe: drawn once per generation, shared by every metric).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


def sort_floats(x, axis: int = -1):
    """Sort float32 values along ``axis`` via an order-preserving int32 view.

    Same result as ``jnp.sort`` for non-NaN input; XLA's CPU sort is ~5x faster on integers.
    """
    i = jax.lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
    flip = jnp.int32(0x7FFFFFFF)
    key = jnp.where(i < 0, i ^ flip, i)
    key = jnp.sort(key, axis=axis)
    return jax.lax.bitcast_convert_type(jnp.where(key < 0, key ^ flip, key), jnp.float32)


def sliced_w2(key, x, y, projections: int):
    """Sliced 2-Wasserstein distance between equal-size samples x, y: [m, d]."""
    d = x.shape[-1]
    dirs = jax.random.normal(key, (projections, d))
    dirs = dirs / jnp.linalg.norm(dirs, axis=-1, keepdims=True)
    px = sort_floats(dirs @ x.T, axis=-1)   # [projections, m]
    py = sort_floats(dirs @ y.T, axis=-1)
    return jnp.sqrt(jnp.mean((px - py) ** 2))


def mmd2(x, y, bandwidth: float):
    """Unbiased squared MMD with a Gaussian kernel exp(-|a-b|^2 / (2 h^2)); x, y: [m, d]."""
    def k(a, b):
        d2 = jnp.sum(a ** 2, 1)[:, None] + jnp.sum(b ** 2, 1)[None] - 2 * a @ b.T
        return jnp.exp(-jnp.clip(d2, 0.0) / (2 * bandwidth ** 2))
    m = x.shape[0]
    off = 1.0 - jnp.eye(m)
    kxx = jnp.sum(k(x, x) * off) / (m * (m - 1))
    kyy = jnp.sum(k(y, y) * off) / (m * (m - 1))
    kxy = jnp.mean(k(x, y))
    return kxx + kyy - 2 * kxy


def sinkhorn(x, y, epsilon: float):
    """Debiased Sinkhorn divergence (ott-jax) between point clouds x, y: [m, d]."""
    from ott.geometry import pointcloud
    from ott.tools.sinkhorn_divergence import sinkhorn_divergence

    div, _ = sinkhorn_divergence(pointcloud.PointCloud, x, y, epsilon=epsilon)
    return div


def _vector_rows(ctx, name):
    require(ctx.source.dim > 0, name, "a truth whose rows are vectors [n, dim] (not categorical or regression)")


@register_metric("sliced_w2", doc="sliced 2-Wasserstein distance between the probe's model and truth rows",
                 needs=("model", "truth"),
                 long_name="sliced W2 distance to the truth", units="1")
def make_sliced(ctx):
    _vector_rows(ctx, "sliced_w2")
    return lambda probe, s, knobs: sliced_w2(probe.key, probe.model, probe.truth, ctx.options.projections)


@register_metric("mmd", doc="unbiased squared MMD (Gaussian kernel) between the probe's model and truth rows",
                 needs=("model", "truth"),
                 long_name="squared MMD to the truth", units="1")
def make_mmd(ctx):
    _vector_rows(ctx, "mmd")
    return lambda probe, s, knobs: mmd2(probe.model, probe.truth, ctx.options.mmd_bandwidth)


@register_metric("sinkhorn", doc="debiased Sinkhorn divergence (ott-jax) between the probe's model and truth rows",
                 needs=("model", "truth"),
                 long_name="Sinkhorn divergence to the truth", units="1")
def make_sinkhorn(ctx):
    _vector_rows(ctx, "sinkhorn")
    return lambda probe, s, knobs: sinkhorn(probe.model, probe.truth, ctx.options.sinkhorn_epsilon)
