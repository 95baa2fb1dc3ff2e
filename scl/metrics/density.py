"""Total variation between a model's density and the truth's, by quadrature on a regular grid.

    TV(p_t, p_data) = 1/2 int |p_t - p_data| = 1 - int min(p_t, p_data)

(the two agree when both integrate to 1). The integral is the midpoint rule on ``density_grid``
points per axis over a box around the truth: mean +- 8 sd per coordinate for a Gaussian truth,
otherwise the bounding box of 65536 truth rows widened by 10 % of its side on each side. The
``1 - int min`` form only needs the box to hold the truth's mass: model mass outside it (a
model drifted far away) still counts in full. 1-D and 2-D truths with a known density; families
with a ``log_prob`` (Gaussian, GMM, KDE, flows).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from scl.metrics.base import require
from scl.registry import register_metric

GAUSSIAN_HALF_WIDTH = 8.0   # box = mean +- 8 sd for a Gaussian truth
BOX_ROWS = 65536            # truth rows drawn to find a non-Gaussian truth's bounding box
BOX_MARGIN = 0.1            # ... widened by this share of its side on each side


def truth_box(source):
    """(lo [d], hi [d]) float64: the box the quadrature covers."""
    if source.gaussian is not None:
        mean, cov = (np.asarray(a, np.float64) for a in source.gaussian)
        sd = np.sqrt(np.diag(cov))
        return mean - GAUSSIAN_HALF_WIDTH * sd, mean + GAUSSIAN_HALF_WIDTH * sd
    rows = np.asarray(source.sample(jax.random.PRNGKey(0), BOX_ROWS), np.float64)
    lo, hi = rows.min(0), rows.max(0)
    side = hi - lo
    return lo - BOX_MARGIN * side, hi + BOX_MARGIN * side


def midpoint_grid(lo, hi, points: int):
    """(cell midpoints [points^d, d] float32, cell volume float) of the regular grid on the box."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    step = (hi - lo) / points
    axes = [lo[i] + (np.arange(points) + 0.5) * step[i] for i in range(lo.shape[0])]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, lo.shape[0])
    return jnp.asarray(mesh, jnp.float32), float(np.prod(step))


def tv_on_grid(model_density, truth_density, volume):
    """[] 1 - sum min(p, q) volume, clipped to [0, 1], for densities [M] on the grid's cells. A
    non-finite model density (a collapsed, singular model: no density) counts as 0, so a point
    mass is at TV 1 from a continuous truth."""
    p = jnp.where(jnp.isfinite(model_density), model_density, 0.0)
    return jnp.clip(1.0 - volume * jnp.sum(jnp.minimum(p, truth_density)), 0.0, 1.0)


@register_metric("tv_density",
                 doc="total variation 1/2 int |p_t - p_data| by the midpoint rule on a grid (1-D / 2-D truths)",
                 long_name="total variation distance to the truth", units="1")
def make_tv_density(ctx):
    name = "tv_density"
    require(ctx.family.log_prob is not None, name,
            "a model family with a density (log_prob: gaussian, gmm, kde, flow)")
    require(ctx.source.dim in (1, 2), name, f"a 1-D or 2-D truth (truth.dim is {ctx.source.dim})")
    require(ctx.source.log_prob is not None, name,
            "a truth with a known density (gaussian, eight_gaussians, checkerboard)")
    points, volume = midpoint_grid(*truth_box(ctx.source), ctx.options.density_grid)
    truth_density = jnp.exp(ctx.source.log_prob(points))
    return lambda probe, state, knobs: tv_on_grid(jnp.exp(ctx.family.log_prob(state, points)),
                                                  truth_density, volume)
