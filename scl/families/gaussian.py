"""Gaussian family: weighted MLE or unbiased fit, full or diagonal covariance, sampling bias."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from scl.config import ConfigError, check_range, knob, static
from scl.families.base import Family
from scl.families.weighted import require_rows
from scl.registry import register_family


@dataclass(frozen=True)
class GaussianModel:
    """``model: {family: gaussian, covariance, estimator, sampling_bias}``."""

    tag_key = "family"
    name = "gaussian"
    covariance: Literal["full", "diag"] = static("full", "full or diagonal covariance")
    estimator: Literal["mle", "unbiased"] = static(
        "mle", "mle divides the scatter by sum(w); unbiased by sum(w) - 1 (frequency weights)")
    sampling_bias: float = knob(
        1.0, "scales the sampling covariance: 1 = none, < 1 trades diversity for quality")

    def validate(self, path):
        check_range(f"{path}.sampling_bias", self.sampling_bias, 0.0, lo_open=True)

    def knob_values(self) -> dict:
        return {"sampling_bias": self.sampling_bias}

    def check(self, cfg):
        require_rows(cfg, "vector", self.name)
        d = cfg.truth.dim if hasattr(cfg.truth, "dim") else 2
        if self.covariance == "full" and cfg.loop.n <= d:
            raise ConfigError("loop.n", f"must be > truth dimension {d} for a full-covariance fit, got {cfg.loop.n}")


class GaussianState(NamedTuple):
    mean: jax.Array  # [d]
    cov: jax.Array   # [d, d]


def weighted_moments(x, w, estimator: str, diagonal: bool):
    """Weighted mean [d] and covariance [d, d] of rows x [N, d] with weights w [N]."""
    total = jnp.sum(w)
    mean = jnp.sum(w[:, None] * x, 0) / total
    centred = x - mean
    scatter = jnp.einsum("n,ni,nj->ij", w, centred, centred)
    denom = total - 1.0 if estimator == "unbiased" else total
    cov = scatter / denom
    if diagonal:
        cov = jnp.diag(jnp.diag(cov))
    return mean, cov


@register_family("gaussian", GaussianModel)
def make_gaussian(o: GaussianModel, source) -> Family:
    """Gaussian refitted by MLE or the unbiased estimator."""
    diagonal = o.covariance == "diag"

    def fit(key, state, x, w, knobs):
        return GaussianState(*weighted_moments(x, w, o.estimator, diagonal))

    def init(key, x, w, knobs):
        return fit(key, None, x, w, knobs)

    def sample(key, state, n, knobs):
        cov = knobs["sampling_bias"] * state.cov
        if diagonal:
            root = jnp.diag(jnp.sqrt(jnp.clip(jnp.diag(cov), 0.0)))
        else:
            root = jnp.linalg.cholesky(cov)
            root = jnp.where(jnp.isfinite(root), root, 0.0)  # a collapsed (singular) covariance
        z = jax.random.normal(key, (n, state.mean.shape[0]))
        return state.mean + z @ root.T

    def log_prob(state, x):
        d = x - state.mean
        sign, logdet = jnp.linalg.slogdet(state.cov)
        sol = jnp.linalg.solve(state.cov, d.T).T
        return -0.5 * (jnp.sum(d * sol, -1) + logdet + x.shape[-1] * jnp.log(2 * jnp.pi))

    return Family(init=init, fit=fit, sample=sample, log_prob=log_prob,
                  gaussian=lambda s: (s.mean, s.cov))
