"""Gaussian family: weighted MLE or unbiased fit, full or diagonal covariance, sampling bias.

``estimator: known_covariance`` fits the mean only and keeps the truth's covariance (a Gaussian
truth is required). Exact result (tested): under ``replace`` the mean is a Gaussian random walk,
generation g (g = 0 fitted on the n real rows) has E|mu_g - mu_0|^2 = (g + 1) tr(Sigma_0) / n and
mu_g ~ N(mu_0, (g + 1) Sigma_0 / n).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from scl import moments
from scl.errors import ConfigError
from scl.options import knob, static
from scl.families.base import Family
from scl.families.weighted import require_rows
from scl.small_linalg import cholesky
from scl.registry import register_family


@dataclass(frozen=True)
class GaussianModel:
    """``model: {family: gaussian, covariance, estimator, sampling_bias, draw}``."""

    tag_key = "family"
    row_weights = True   # its fit reads fractional row weights (loop.real_weight applies)
    samples_gaussian = True   # Family.sampling_gaussian: curation rule tilt can be exact
    name = "gaussian"
    covariance: Literal["full", "diag"] = static("full", "full or diagonal covariance")
    estimator: Literal["mle", "unbiased", "known_covariance"] = static(
        "mle", "mle divides the scatter by sum(w); unbiased by sum(w) - 1 (frequency weights); "
        "known_covariance fits the mean only and keeps the (Gaussian) truth's covariance")
    sampling_bias: float = knob(
        1.0, "scales the sampling covariance: 1 = none, < 1 trades diversity for quality", gt=0.0)
    draw: Literal["auto", "statistics", "rows"] = static(
        "auto", "how a generation's training set is drawn: statistics = its mean (normal) and "
        "scatter (Wishart) directly, exact in distribution and O(d^2) random numbers instead of "
        "O(n d); rows = every row; auto = statistics where exact (replace, fresh, fixed_real; "
        "no curation or correction)")

    def check(self, cfg):
        require_rows(cfg, "vector", self.name)
        if self.estimator == "known_covariance" and getattr(cfg.truth, "name", None) != "gaussian":
            raise ConfigError("model.estimator", "'known_covariance' needs a Gaussian truth "
                              f"(truth.kind: gaussian), got truth.kind {getattr(cfg.truth, 'name', None)!r}")
        d = cfg.truth.dim if hasattr(cfg.truth, "dim") else 2
        if self.covariance == "full" and cfg.loop.n <= d:
            raise ConfigError("loop.n", f"must be > truth dimension {d} for a full-covariance fit, got {cfg.loop.n}")
        if self.draw == "statistics":
            problem = moments.statistics_possible(cfg)
            if problem is not None:
                raise ConfigError("model.draw", f"'statistics' is not exact here: {problem[0]} {problem[1]}")


class GaussianState(NamedTuple):
    mean: jax.Array  # [d]
    cov: jax.Array   # [d, d]


def weighted_moments(x, w, estimator: str, diagonal: bool):
    """Weighted mean [d] and covariance [d, d] of rows x [N, d] with weights w [N]."""
    return gaussian_fit(moments.of_rows(x, w), estimator, diagonal)


def gaussian_fit(m: moments.Moments, estimator: str, diagonal: bool, known_cov=None):
    """Mean [d] and covariance [d, d] from a training set's count, mean and scatter
    (``known_cov`` [d, d]: the covariance ``known_covariance`` keeps)."""
    if estimator == "known_covariance":
        return m.mean, jnp.asarray(known_cov, jnp.float32)
    denom = m.count - 1.0 if estimator == "unbiased" else m.count
    cov = m.scatter / denom
    if diagonal:
        cov = jnp.diag(jnp.diag(cov))
    return m.mean, cov


@register_family("gaussian", GaussianModel)
def make_gaussian(o: GaussianModel, source) -> Family:
    """Gaussian refitted by MLE or the unbiased estimator."""
    diagonal = o.covariance == "diag"
    known_cov = None
    if o.estimator == "known_covariance":
        known_cov = source.gaussian[1]
        if diagonal:
            known_cov = jnp.diag(jnp.diag(jnp.asarray(known_cov)))

    def fit(key, state, x, w, knobs):
        return GaussianState(*gaussian_fit(moments.of_rows(x, w), o.estimator, diagonal, known_cov))

    def init(key, x, w, knobs):
        return fit(key, None, x, w, knobs)

    def sampling_root(state, knobs):
        cov = knobs["sampling_bias"] * state.cov
        if diagonal:
            return jnp.diag(jnp.sqrt(jnp.clip(jnp.diag(cov), 0.0)))
        root = cholesky(cov)
        return jnp.where(jnp.isfinite(root), root, 0.0)  # a collapsed (singular) covariance

    def sample(key, state, n, knobs):
        z = jax.random.normal(key, (n, state.mean.shape[0]))
        return state.mean + z @ sampling_root(state, knobs).T

    def sampling_gaussian(state, knobs):
        return state.mean, sampling_root(state, knobs)

    def fit_moments(key, state, m, knobs):
        return GaussianState(*gaussian_fit(m, o.estimator, diagonal, known_cov))

    def log_prob(state, x):
        d = x - state.mean
        sign, logdet = jnp.linalg.slogdet(state.cov)
        sol = jnp.linalg.solve(state.cov, d.T).T
        return -0.5 * (jnp.sum(d * sol, -1) + logdet + x.shape[-1] * jnp.log(2 * jnp.pi))

    return Family(init=init, fit=fit, sample=sample, log_prob=log_prob,
                  gaussian=lambda s: (s.mean, s.cov), sampling_gaussian=sampling_gaussian, fit_moments=fit_moments)
