"""Linear-regression truth: (x, y) pairs with x ~ N(0, diag(design_std^2)), y = x.w0 + noise.

Rows are a dict ``{"x": [n, d] float32, "y": [n] float32}``. ``Source.params``:
``{"weights": w0 [d], "design_cov": Sigma [d, d], "noise": sigma}``. ``log_prob(rows) -> [n]`` is
the conditional log-density log N(y; x.w0, sigma^2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import static
from scl.data.source import Source
from scl.registry import register_source


@dataclass(frozen=True)
class LinearRegressionTruth:
    """``truth: {kind: linear_regression, features, weights, design_std, noise}``."""

    tag_key = "kind"
    name = "linear_regression"
    rows = "regression"
    dim = 0
    features: int = static(10, "number of features d", ge=1)
    weights: Optional[tuple[float, ...]] = static(None, "true weights w0 [d] (default all 1/sqrt(d))",
                                                  finite=True)
    design_std: float = static(1.0, "x ~ N(0, design_std^2 I)", gt=0.0, finite=True)
    noise: float = static(1.0, "label noise sigma: y = x.w0 + sigma z", ge=0.0, finite=True)

    def validate(self, path):
        if self.weights is not None and len(self.weights) != self.features:
            raise ConfigError(f"{path}.weights", f"needs {self.features} entries (truth.features), "
                              f"got {len(self.weights)}")

    def true_weights(self) -> np.ndarray:
        if self.weights is None:
            return np.full(self.features, 1.0 / np.sqrt(self.features), np.float32)
        return np.asarray(self.weights, np.float32)


@register_source("linear_regression", LinearRegressionTruth)
def make_linear_regression(o: LinearRegressionTruth) -> Source:
    """Gaussian design, linear labels with Gaussian noise."""
    w0 = jnp.asarray(o.true_weights())
    d = o.features

    def sample(key, n):
        kx, ky = jax.random.split(key)
        x = o.design_std * jax.random.normal(kx, (n, d))
        return {"x": x, "y": x @ w0 + o.noise * jax.random.normal(ky, (n,))}

    def log_prob(rows):
        r = rows["y"] - rows["x"] @ w0
        return -0.5 * (r / o.noise) ** 2 - jnp.log(o.noise) - 0.5 * jnp.log(2 * jnp.pi)

    params = {"weights": w0, "design_cov": (o.design_std ** 2) * jnp.eye(d), "noise": o.noise}
    return Source(sample=sample, dim=0, log_prob=log_prob, params=params)
