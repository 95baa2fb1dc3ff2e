"""Analytic-score diffusion: the fit is a Gaussian (mixture) MLE, the noise prediction is exact.

State: ``MixtureState(weights [K], means [K, d], covs [K, d, d])`` (scl.families.mixture), in
data coordinates (no standardisation). Fit: K = 1 the weighted MLE mean and covariance (divided
by sum w) plus ``covariance_floor`` I; K > 1 weighted EM (k-means++ start, ``em_iterations``).
The diffused model at noise level abar is the mixture of N(sqrt(abar) mu_k, abar C_k +
(1 - abar) I), and the noise prediction is exact: eps(z, t) = -sqrt(1 - abar_t) grad log p_t(z).
Samplers: the diffusion family's DDIM / ancestral chain (scl.families.diffusion.denoise, no
clipping) with the same schedule, timesteps, sampler and sample_steps options.

SIMS (scl.families.sims): the auxiliary is the same MLE fitted on n_s base samples (what
fine-tuning to convergence gives for this family; ``aux_steps`` is unused), for K > 1 EM
warm-started from the base's mixture (so components correspond). Neon extrapolates (weights,
means, covs) leafwise, then projects: covariances symmetrised, and one with an eigenvalue below
``covariance_floor`` rebuilt with its eigenvalues clipped there; weights, if one is negative,
clipped at 0 and renormalised (K = 1: the weight stays 1).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.options import static
from scl.families.base import Family
from scl.families.diffusion import alpha_bars, denoise, denoising_chain
from scl.families.mixture import MixtureState, component_log_density, em_step, kmeans_pp_start
from scl.families.sims import Guidable, SimsOptions, sims_family
from scl.families.weighted import require_rows
from scl.registry import register_family


@dataclass(frozen=True)
class AnalyticDiffusionModel(SimsOptions):
    """``model: {family: analytic_diffusion, components, schedule, timesteps, sampler, ...}``."""

    tag_key = "family"
    name = "analytic_diffusion"
    row_weights = True   # its fit reads fractional row weights
    components: int = static(1, "K: 1 = Gaussian MLE, > 1 = Gaussian-mixture EM", ge=1)
    em_iterations: int = static(20, "EM iterations when components > 1", ge=0)
    covariance_floor: float = static(1e-6, "added to every fitted covariance's diagonal; Neon's "
                                           "eigenvalue floor", ge=0.0)
    schedule: Literal["linear", "cosine"] = static("linear", "noise schedule")
    timesteps: int = static(1000, "T, noise levels", ge=2)
    sampler: Literal["ancestral", "ddim"] = static("ancestral", "ancestral (eta = 1) or DDIM (eta = 0)")
    sample_steps: int = static(100, "denoising steps when sampling (<= timesteps)")

    def validate(self, path):
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ConfigError(f"{path}.sample_steps", f"must be in [1, timesteps={self.timesteps}], got {self.sample_steps}")

    def check(self, cfg):
        from scl.registry import SOURCES

        require_rows(cfg, "vector", self.name)
        self.check_sims(cfg, lambda: SOURCES[cfg.truth.name].make(cfg.truth).num_modes
                        or (self.components if self.components > 1 else 0))


def gaussian_mle(x, w, floor):
    """Weighted MLE: weights [1], mean [1, d], cov [1, d, d] (+ floor I) of rows x [N, d], w [N]."""
    total = jnp.sum(w)
    mean = jnp.sum(w[:, None] * x, 0) / total
    diff = x - mean
    cov = (w[:, None] * diff).T @ diff / total + floor * jnp.eye(x.shape[1])
    return MixtureState(jnp.ones((1,)), mean[None], cov[None])


def diffused_eps(state: MixtureState, z, abar):
    """Exact eps [n, d] at points z [n, d] under the diffused mixture at noise levels abar [n]:
    -sqrt(1 - abar) grad log sum_k pi_k N(z; sqrt(abar) mu_k, abar C_k + (1 - abar) I).

    One eigendecomposition C_k = V_k diag(lam_k) V_k^T per call (K matrices), then every point is
    elementwise arithmetic in that basis, since abar C_k + (1 - abar) I = V_k diag(abar lam_k +
    1 - abar) V_k^T. No per-point LAPACK call: jaxlib's batched CPU LAPACK kernels split a batch
    of ~16k+ matrices over the intra-op pool and wait on it, and two such calls running at once
    (base and auxiliary under SIMS guidance) deadlocked a 2-core machine (n = 20000 hung)."""
    abar = jnp.broadcast_to(jnp.asarray(abar, z.dtype), z.shape[:1])
    covs = 0.5 * (state.covs + jnp.swapaxes(state.covs, -1, -2))
    lam, vecs = jnp.linalg.eigh(covs)                                            # [K, d], [K, d, d]
    a = abar[:, None, None]
    spread = a * lam[None] + (1 - a)                                            # [n, K, d]
    diff = z[:, None, :] - jnp.sqrt(a) * state.means[None]                      # [n, K, d]
    coords = jnp.einsum("nkd,kde->nke", diff, vecs)                             # in V_k's basis
    logp = -0.5 * jnp.sum(coords ** 2 / spread + jnp.log(spread), -1)           # [n, K] (+ const)
    resp = jax.nn.softmax(logp + jnp.log(jnp.maximum(state.weights, 1e-30)), -1)
    solves = jnp.einsum("nke,kde->nkd", coords / spread, vecs)                  # Sigma_k^-1 diff
    return jnp.sqrt(1 - abar)[:, None] * jnp.einsum("nk,nkd->nd", resp, solves)


def psd_project(cov, floor):
    """cov [K, d, d] symmetrised; a matrix with an eigenvalue below ``floor`` is rebuilt with its
    eigenvalues clipped there (the others are returned unchanged, bit for bit)."""
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2))
    vals, vecs = jnp.linalg.eigh(cov)
    clipped = jnp.einsum("...ij,...j,...kj->...ik", vecs, jnp.maximum(vals, floor), vecs)
    return jnp.where(jnp.all(vals >= floor, -1)[..., None, None], cov, clipped)


@register_family("analytic_diffusion", AnalyticDiffusionModel)
def make_analytic_diffusion(o: AnalyticDiffusionModel, source) -> Family:
    """Diffusion whose fit is a Gaussian (mixture) MLE and whose score is exact."""
    dim = source.dim
    T = o.timesteps
    abar = jnp.asarray(alpha_bars(o.schedule, T), jnp.float32)
    chain = denoising_chain(o.schedule, T, o.sample_steps, o.sampler)
    K = o.components

    def run_em(state, x, w):
        return jax.lax.fori_loop(0, o.em_iterations, lambda _, s: em_step(s, x, w, o.covariance_floor, False), state)

    def init(key, x, w, knobs):
        if K == 1:
            return gaussian_mle(x, w, o.covariance_floor)
        return run_em(kmeans_pp_start(key, x, w, K, o.covariance_floor, False), x, w)

    def fit(key, state, x, w, knobs):
        return init(key, x, w, knobs)

    def fine_tune(key, base, x, w, knobs):
        return gaussian_mle(x, w, o.covariance_floor) if K == 1 else run_em(base, x, w)

    def predict(state, z, t, cond=None):
        a = abar[jnp.round(t * T).astype(jnp.int32)]                                # [n]
        return diffused_eps(state, z, a)

    def sample_with(eps_fn, key, n, temperature=1.0):
        return denoise(eps_fn, key, n, dim, chain, None, temperature)

    def project(p: MixtureState):
        clipped = jnp.maximum(p.weights, 0.0)
        weights = jnp.where(jnp.any(p.weights < 0), clipped / jnp.sum(clipped), p.weights)
        return MixtureState(weights, p.means, psd_project(p.covs, o.covariance_floor))

    def labels(state, x):
        if source.assign is not None:
            return source.assign(x)
        logp = component_log_density(x, state.means, state.covs) + jnp.log(jnp.maximum(state.weights, 1e-30))
        return jnp.argmax(logp, -1)

    def log_prob(state, x):
        from scl.families.mixture import mixture_log_prob
        return mixture_log_prob(state, x)

    g = Guidable(params=lambda s: s, with_params=lambda s, p: p, predict=predict,
                 sample_with=sample_with, to_rows=lambda s, z, cond: z, fine_tune=fine_tune,
                 project=project, labels=labels)
    # no ``gaussian``: the model's law is the sampler's (finite steps), not the fitted Gaussian
    family = Family(init=init, fit=fit, sample=None, log_prob=log_prob)
    return sims_family(family, g, o)
