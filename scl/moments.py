"""Exact shortcut for Gaussian fits: draw a training set's sufficient statistics, not its rows.

A Gaussian fit (MLE or unbiased, full or diagonal) reads its k training rows only through their
count, mean and scatter S = sum_i (x_i - mean)(x_i - mean)^T. For k i.i.d. rows from
N(mu, R R^T) the mean and the scatter are independent, with

    mean ~ N(mu, R R^T / k),     S = R W R^T,   W ~ Wishart_d(k - 1, I),

and Bartlett's decomposition draws W = A A^T from d chi-square and d(d-1)/2 normal numbers:
A lower triangular, A_jj^2 ~ chi2(k - 1 - j), A_ij ~ N(0, 1) for i > j, and the columns
j >= k - 1 zero (k - 1 < d rows span only k - 1 directions). Two disjoint sets combine exactly
(Chan, Golub and LeVeque):

    count = a + b,  mean = (a m_a + b m_b) / count,  S = S_a + S_b + a b / count (m_a - m_b)(m_a - m_b)^T.

So a generation of ``replace``, ``fresh`` or ``fixed_real`` costs O(d^2) random numbers instead
of O(n d), and is exact in distribution (not bit-for-bit the same draws as sampling rows).
The engine takes this path when ``model.draw`` resolves to ``statistics``; each regime's
statistics form sits beside its row mixer (scl.mixing).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from scl import registry
from scl.small_linalg import lower_triangular, matmul


class Moments(NamedTuple):
    """Sufficient statistics of a set of rows."""

    count: jax.Array    # [] number of rows (float32)
    mean: jax.Array     # [d]
    scatter: jax.Array  # [d, d] sum of outer products of centred rows


def of_rows(x, w) -> Moments:
    """Moments of rows x [N, d] with 0/1 (or frequency) weights w [N]."""
    count = jnp.sum(w)
    mean = jnp.sum(w[:, None] * x, 0) / jnp.maximum(count, 1e-30)
    centred = x - mean
    return Moments(count, mean, jnp.einsum("n,ni,nj->ij", w, centred, centred))


def combine(a: Moments, b: Moments) -> Moments:
    """Moments of the union of two disjoint sets (either may be empty, not both)."""
    count = a.count + b.count
    safe = jnp.maximum(count, 1e-30)
    delta = a.mean - b.mean
    mean = (a.count * a.mean + b.count * b.mean) / safe
    scatter = a.scatter + b.scatter + (a.count * b.count / safe) * jnp.outer(delta, delta)
    return Moments(count, mean, scatter)


def combine_shares(a: Moments, b: Moments, share_a) -> Moments:
    """Moments of the union of two disjoint sets whose rows are reweighted so that set ``a`` holds
    the share ``share_a`` of the total weight a.count + b.count and ``b`` the rest (frequency
    weights: each row of a weighs share_a N / a.count, N = a.count + b.count). An empty set
    leaves its share to the other. share_a = a.count / N gives :func:`combine`.

    mean = s m_a + (1 - s) m_b,  S = s N / a.count S_a + (1 - s) N / b.count S_b + N s (1 - s) dd^T."""
    count = a.count + b.count
    s = jnp.where(b.count > 0, jnp.where(a.count > 0, share_a, 0.0), 1.0)
    scale_a = s * count / jnp.maximum(a.count, 1e-30)
    scale_b = (1.0 - s) * count / jnp.maximum(b.count, 1e-30)
    delta = a.mean - b.mean
    mean = s * a.mean + (1.0 - s) * b.mean
    scatter = scale_a * a.scatter + scale_b * b.scatter + count * s * (1.0 - s) * jnp.outer(delta, delta)
    return Moments(count, mean, scatter)


def chi_square(key, dof):
    """chi2(dof) draws, dof [...] >= 0 integers (0 gives 0): 2 Gamma(dof/2) for dof >= 2 from
    ``jax.random.gamma``, the square of a normal for dof = 1.

    jax.random.gamma replaced a hand-written vectorised Marsaglia-Tsang sampler: inside the whole
    engine (``python scripts/bench_gamma.py --engine``: bench_engine.py's grid, best of 3 x 3) the
    two measured 0.576 / 0.592 s and 0.623 / 0.586 s (jax / hand-written) in two runs, a tie
    within this machine's noise, so the library's sampler is used."""
    dof = jnp.asarray(dof, jnp.float32)
    k_gamma, k_normal = jax.random.split(key)
    g = 2.0 * jax.random.gamma(k_gamma, jnp.maximum(dof, 2.0) / 2.0)
    z = jax.random.normal(k_normal, jnp.shape(dof))
    return jnp.where(dof >= 2, g, jnp.where(dof == 1, z * z, 0.0))


def draw_sets(key, sets) -> list:
    """Moments of independent sets of rows: ``sets`` is a sequence of (mean [d], root [d, d],
    count []) and set p holds ``count`` (traced, >= 0) i.i.d. rows from N(mean, root root^T)
    (root: any square root of the covariance, e.g. its Cholesky factor). Returns a list of
    Moments, one per set.

    The random numbers of all sets come from one normal and one gamma call (fast under vmap); the
    matrix products run per set (batched [P, d, d] products round differently with the batch
    size on CPU, and a configuration must give the same bits alone and inside a sweep)."""
    P, d = len(sets), sets[0][0].shape[0]
    k_chi, k_normal = jax.random.split(key)
    count = jnp.stack([jnp.asarray(c, jnp.float32) for _, _, c in sets])          # [P]
    dof = count - 1.0                                               # Wishart degrees of freedom
    j = jnp.arange(d)
    below = d * (d - 1) // 2                                        # entries under the diagonal
    z = jax.random.normal(k_normal, (P * (d + below),)).reshape(P, d + below)   # flat: faster
    # Bartlett: A lower triangular, A_jj^2 ~ chi2(dof - j), N(0, 1) below; columns j >= dof zero
    diag = jnp.sqrt(chi_square(k_chi, (dof[:, None] - j[None, :]).reshape(-1))).reshape(P, d)
    out = []
    for p, (mean, root, _) in enumerate(sets):
        m = mean + matmul(root, z[p, :d, None])[:, 0] / jnp.sqrt(jnp.maximum(count[p], 1.0))
        a = lower_triangular(z[p, d:], diag[p])
        a = matmul(root, jnp.where(j[None, :] < dof[p], a, 0.0))   # rank min(dof, d)
        out.append(Moments(count[p], m, matmul(a, a.T)))
    return out


def draw(key, mean, root, count) -> Moments:
    """Moments of ``count`` (traced, >= 0) i.i.d. rows from N(mean [d], root root^T [d, d])."""
    return draw_sets(key, [(mean, root, count)])[0]


def statistics_possible(cfg):
    """None when drawing statistics is exact for ``cfg``; else (field, reason) for the error.

    Exact where the regime has a statistics form (``replace``, ``fresh`` with a gaussian truth,
    ``fixed_real``: registry trait ``statistics``) and no stage acts on individual rows between
    the draw and the fit."""
    loop = cfg.loop
    traits = registry.REGIMES[loop.regime].traits
    if not traits.get("statistics"):
        have = [name for name, e in registry.REGIMES.items() if e.traits.get("statistics")]
        return ("loop.regime", f"is {loop.regime!r}; drawing statistics needs one of {', '.join(have)}")
    for section in ("curation", "correction"):
        if getattr(cfg, section, None) is not None:
            return (section, "acts on individual rows; drawing statistics needs no curation or correction")
    if traits.get("fresh_real"):
        kind = getattr(cfg.truth, "name", None)
        if kind != "gaussian":
            return ("truth.kind", f"is {kind!r}; fresh real rows can be drawn as statistics only from a gaussian truth")
    return None
