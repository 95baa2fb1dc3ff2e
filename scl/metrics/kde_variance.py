"""kde_variance: the total variance (trace of the covariance) of a kernel density estimator.

For the KDE p(y) = (1/c) sum_{i<c} N(y; x_i, h^2 I) on d-dimensional rows this is exactly
tr(S / c) + d h^2, S the scatter of its c training rows (a uniformly picked row plus independent
kernel noise): no sampling, so its closed form (scl.theory.kde) is checked without probe noise.
"""
from __future__ import annotations

import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


@register_metric("kde_variance", doc="trace of the KDE's covariance: MLE variance of its training rows + d h^2",
                 long_name="KDE total variance", units="1")
def make_kde_variance(ctx):
    require(ctx.config is not None and ctx.config.model.name == "kde", "kde_variance",
            "a kernel density estimator (model.family: kde)")

    def fn(probe, state, knobs):
        x = state.x.astype(jnp.float32)                                    # [N, d]
        present = (jnp.arange(x.shape[0]) < state.count).astype(jnp.float32)
        c = jnp.maximum(state.count.astype(jnp.float32), 1.0)
        mean = jnp.sum(present[:, None] * x, 0) / c
        var = jnp.sum(present[:, None] * (x - mean) ** 2) / c
        return var + x.shape[-1] * state.bandwidth ** 2
    return fn
