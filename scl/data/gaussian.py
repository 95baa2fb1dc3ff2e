"""d-dimensional Gaussian truth N(mean, cov)."""
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
class GaussianTruth:
    """``truth: {kind: gaussian, dim, mean, cov | std}``; default N(0, I) in 2-D."""

    tag_key = "kind"
    name = "gaussian"
    dim: int = static(2, "dimension", ge=1)
    mean: Optional[tuple[float, ...]] = static(None, "mean vector (default zeros)", finite=True)
    cov: Optional[tuple[tuple[float, ...], ...]] = static(None, "covariance matrix (default std^2 I)",
                                                          finite=True)
    std: float = static(1.0, "per-coordinate standard deviation when cov is not given", gt=0.0, finite=True)

    def validate(self, path):
        if self.mean is not None and len(self.mean) != self.dim:
            raise ConfigError(f"{path}.mean", f"needs {self.dim} entries (truth.dim), got {len(self.mean)}")
        if self.cov is not None:
            if any(len(row) != len(self.cov) for row in self.cov):
                raise ConfigError(f"{path}.cov", f"must be a square {self.dim}x{self.dim} matrix (truth.dim); got rows "
                                  f"of lengths {[len(row) for row in self.cov]}")
            c = np.asarray(self.cov, dtype=float)
            if c.shape != (self.dim, self.dim):
                raise ConfigError(f"{path}.cov", f"must be {self.dim}x{self.dim} (truth.dim), got shape {c.shape}")
            if not np.allclose(c, c.T) or np.linalg.eigvalsh(c).min() <= 0:
                raise ConfigError(f"{path}.cov", "must be symmetric positive definite")

    def params(self):
        mean = np.zeros(self.dim) if self.mean is None else np.asarray(self.mean, float)
        cov = self.std ** 2 * np.eye(self.dim) if self.cov is None else np.asarray(self.cov, float)
        return mean.astype(np.float32), cov.astype(np.float32)


@register_source("gaussian", GaussianTruth)
def make_gaussian(opts: GaussianTruth) -> Source:
    """d-dimensional Gaussian N(mean, cov)."""
    mean_np, cov_np = opts.params()
    mean, cov = jnp.asarray(mean_np), jnp.asarray(cov_np)
    chol = jnp.linalg.cholesky(cov)
    inv = jnp.linalg.inv(cov)
    logdet = jnp.linalg.slogdet(cov)[1]

    def sample(key, n):
        return mean + jax.random.normal(key, (n, opts.dim)) @ chol.T

    def log_prob(x):
        d = x - mean
        return -0.5 * (jnp.einsum("ni,ij,nj->n", d, inv, d) + logdet + opts.dim * jnp.log(2 * jnp.pi))

    return Source(sample=sample, dim=opts.dim, gaussian=(mean, cov), log_prob=log_prob)
