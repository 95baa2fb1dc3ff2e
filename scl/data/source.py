"""The truth a loop is measured against: a pure sampler plus what is known about it."""
from __future__ import annotations

from typing import Callable, NamedTuple, Optional

import jax


class Source(NamedTuple):
    """A data source (the truth).

    sample(key, n) -> x: [n, dim] float32 (or a pytree of arrays with leading axis n).
    gaussian: (mean [dim], cov [dim, dim]) when the truth is exactly Gaussian, else None.
    assign(x [n, dim]) -> [n] int: index of the true mode each row belongs to, for truths made
        of separated modes (8 Gaussians, moons, circles); None otherwise.
    num_modes: number of such modes (0 if none).
    log_prob(x [n, dim]) -> [n]: exact log-density where known.
    params: known parameters of a truth whose rows are not plain vectors (dim = 0): categorical
        {"probs": [k]} (rows: int category indices [n]); linear regression {"weights": [d],
        "design_cov": [d, d], "noise": float} (rows: {"x": [n, d], "y": [n]}); image datasets
        {"image_shape", "num_classes", "class_names", "label_shares", ...} (scl.data.images).
    heldout(key, n) -> rows: draws from a finite dataset's held-out split, disjoint from the
        rows ``sample`` draws (the per-generation probe's truth rows); None for an infinite truth.
    features(rows) -> {"features": [n, F], "logits": [n, K]}: the embedded feature network of an
        image dataset (scl.features), applied to image rows {"x": [n, D], ...}; None if it has none.
    """

    sample: Callable[[jax.Array, int], jax.Array]
    dim: int
    gaussian: Optional[tuple] = None
    assign: Optional[Callable] = None
    num_modes: int = 0
    log_prob: Optional[Callable] = None
    params: Optional[dict] = None
    heldout: Optional[Callable] = None
    features: Optional[Callable] = None
