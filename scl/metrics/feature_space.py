"""Image metrics in the feature space of the truth's shipped network (scl.features), read from
the probe's features (computed once per generation for the model rows and the held-out rows).

  frechet_feature_distance  |mu_m - mu_r|^2 + tr(S_m + S_r - 2 (S_m S_r)^(1/2)) between Gaussians
                            fitted to the model's and the held-out features. The FID formula, but
                            in scl's small classifier's 128-d space: NOT comparable to Inception
                            FID numbers, only between runs on the same dataset and network.
  precision, recall         Kynkaanniemi et al. 2019: share of model rows inside the real k-NN
                            manifold (union of balls around each real row, radius its k-th nearest
                            real neighbour), and of real rows inside the model's manifold.
  density, coverage         Naeem et al. 2020: mean count of real balls holding a model row / k;
                            share of real balls holding at least one model row.
  feature_diversity         mean pairwise feature distance of the model rows over the same for the
                            held-out rows (1: as spread out as real data; 0: one repeated image).

k is ``metrics.nearest_k`` (default 5).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


def pairwise_distances(a, b):
    """[n, m] Euclidean distances between rows of a [n, F] and b [m, F]."""
    d2 = jnp.sum(a * a, 1)[:, None] + jnp.sum(b * b, 1)[None] - 2.0 * a @ b.T
    return jnp.sqrt(jnp.maximum(d2, 0.0))


def knn_radius(x, k: int):
    """[n] distance from each row of x [n, F] to its k-th nearest other row."""
    d = pairwise_distances(x, x)
    return -jax.lax.top_k(-d, k + 1)[0][:, k]       # index 0 is the row itself (distance 0)


def trace_sqrt_product(ca, cb, iterations: int = 40):
    """tr (C_a C_b)^(1/2) for PSD ca, cb [F, F], by the coupled Newton-Schulz iteration on
    M = C_a C_b / ||C_a C_b||_F (eigenvalues real, in [0, 1]): matmuls only. (Not eigh: LAPACK's
    eigh inside the scanned loop hung XLA's CPU runtime when the sweep is split over several CPU
    devices, as scl run does; measured on jax 0.4.x, 2 devices, 10 configurations.)"""
    m = ca @ cb
    norm = jnp.sqrt(jnp.sum(m * m)) + 1e-30
    eye = jnp.eye(m.shape[0], dtype=m.dtype)

    def step(carry, _):
        y, z = carry
        t = 0.5 * (3.0 * eye - z @ y)
        return (y @ t, t @ z), None

    (y, _), _ = jax.lax.scan(step, (m / norm, eye), None, length=iterations)
    return jnp.trace(y) * jnp.sqrt(norm)


def frechet_distance(a, b):
    """Frechet distance between Gaussians fitted to a [n, F] and b [m, F] (float32):
    |mu_a - mu_b|^2 + tr C_a + tr C_b - 2 tr (C_a C_b)^(1/2)."""
    mu_a, mu_b = jnp.mean(a, 0), jnp.mean(b, 0)
    ca, cb = jnp.cov(a, rowvar=False), jnp.cov(b, rowvar=False)
    cross = trace_sqrt_product(ca, cb)
    return jnp.sum((mu_a - mu_b) ** 2) + jnp.trace(ca) + jnp.trace(cb) - 2.0 * cross


def manifold_scores(real, fake, k: int) -> dict:
    """precision, recall, density, coverage of fake [m, F] against real [n, F]."""
    r_real, r_fake = knn_radius(real, k), knn_radius(fake, k)
    d = pairwise_distances(real, fake)                          # [n real, m fake]
    inside_real = d <= r_real[:, None]                          # fake j in ball of real i
    inside_fake = d <= r_fake[None, :]                          # real i in ball of fake j
    # (XLA shares this work between the four metrics: they read the same probe inside one jit)
    return {"precision": jnp.mean(jnp.any(inside_real, 0)),
            "recall": jnp.mean(jnp.any(inside_fake, 1)),
            "density": jnp.sum(inside_real) / (k * fake.shape[0]),
            "coverage": jnp.mean(jnp.min(d, 1) <= r_real)}


def mean_pairwise_distance(x):
    n = x.shape[0]
    return jnp.sum(pairwise_distances(x, x)) / (n * (n - 1))


def _features(ctx, name):
    require(ctx.source.features is not None, name,
            "an image truth with a shipped feature network (truth.kind: digits)")


LABELS = {"precision": "precision (share of model images on the real feature manifold)",
          "recall": "recall (share of real images on the model's feature manifold)",
          "density": "density (real k-NN balls holding a model image, / k)",
          "coverage": "coverage (share of real k-NN balls holding a model image)"}


@register_metric("frechet_feature_distance", needs=("features",),
                 doc="Frechet distance between model and held-out images in scl's feature network's space (not Inception FID)",
                 long_name="Frechet distance in scl's feature space (not FID)", units="1")
def make_frechet(ctx):
    _features(ctx, "frechet_feature_distance")
    return lambda probe, state, knobs: frechet_distance(probe.model_features["features"],
                                                        probe.truth_features["features"])


def _manifold_metric(name):
    @register_metric(name, needs=("features",), doc=LABELS[name], long_name=LABELS[name].split(" (")[0],
                     units="1")
    def make(ctx):
        _features(ctx, name)
        k = ctx.options.nearest_k
        require(k < ctx.options.samples, name, f"metrics.nearest_k ({k}) below metrics.samples")
        return lambda probe, state, knobs: manifold_scores(
            probe.truth_features["features"], probe.model_features["features"], k)[name]
    return make


for _name in LABELS:
    _manifold_metric(_name)


@register_metric("feature_diversity", needs=("features",),
                 doc="mean pairwise feature distance of model images / that of held-out images (1: as diverse as real data)",
                 long_name="relative diversity in feature space", units="1")
def make_feature_diversity(ctx):
    _features(ctx, "feature_diversity")
    return lambda probe, state, knobs: (mean_pairwise_distance(probe.model_features["features"])
                                        / mean_pairwise_distance(probe.truth_features["features"]))
