"""Gaussian mixture with k components fitted by weighted EM (a fixed number of iterations).

State: ``MixtureState(weights [k], means [k, d], covs [k, d, d])`` (diagonal covariances are
stored as diagonal matrices). Rows x [N, d] carry weights w [N]; EM's responsibilities are
multiplied by w, so zero-weight rows of a fixed-capacity buffer play no part.

* E-step: r_ik proportional to pi_k N(x_i; mu_k, C_k).
* M-step (as scikit-learn's GaussianMixture): N_k = sum_i w_i r_ik + 10 eps, pi_k = N_k / sum N,
  mu_k = sum_i w_i r_ik x_i / N_k, C_k = sum_i w_i r_ik (x_i - mu_k)(x_i - mu_k)^T / N_k + floor I
  (``covariance_floor`` = scikit-learn's reg_covar). A component left with (almost) no mass
  keeps its previous mean and covariance and weight ~0: a lost mode stays lost.
* Initialisation (``init``): ``kmeans++`` seeds k centres by weighted greedy k-means++ (D^2
  sampling, each row's chance also proportional to its weight) on the training set, assigns every row to
  its nearest centre and takes one M-step, then runs ``em_iterations`` EM steps. Generation 0
  always starts this way; later generations do too, or, with ``init: warm``, start EM from the
  previous generation's mixture.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.options import knob, static
from scl.families.base import Family
from scl.families.weighted import pick_rows, require_rows
from scl.registry import register_family

EPS = 10 * float(jnp.finfo(jnp.float32).eps)


@dataclass(frozen=True)
class MixtureModel:
    """``model: {family: mixture, components, covariance, em_iterations, init, covariance_floor}``."""

    tag_key = "family"
    row_weights = True   # its fit reads fractional row weights (loop.real_weight applies)
    name = "mixture"
    components: int = static(8, "number of mixture components k", ge=1)
    covariance: Literal["full", "diag"] = static("full", "full or diagonal component covariances")
    em_iterations: int = static(20, "EM iterations per generation (a fixed count, inside the compiled loop)",
                                ge=0)
    init: Literal["kmeans++", "warm"] = static(
        "kmeans++", "kmeans++: re-seed every generation; warm: start EM from the previous mixture")
    covariance_floor: float = knob(1e-6, "added to every covariance's diagonal (scikit-learn's reg_covar)",
                                   ge=0.0)

    def check(self, cfg):
        require_rows(cfg, "vector", self.name)
        if cfg.loop.n < self.components:
            raise ConfigError("loop.n", f"must be >= model.components ({self.components}), got {cfg.loop.n}")


class MixtureState(NamedTuple):
    weights: jax.Array  # [k]
    means: jax.Array    # [k, d]
    covs: jax.Array     # [k, d, d]


def component_log_density(x, means, covs):
    """[N, k] log N(x_i; mu_k, C_k) for rows x [N, d]."""
    d = x.shape[-1]
    chol = jnp.linalg.cholesky(covs)                                    # [k, d, d]
    diff = x[None] - means[:, None]                                      # [k, N, d]
    z = jax.scipy.linalg.solve_triangular(chol, jnp.swapaxes(diff, 1, 2), lower=True)  # [k, d, N]
    maha = jnp.sum(z ** 2, 1)                                            # [k, N]
    logdet = 2 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), -1)
    return (-0.5 * (maha + logdet[:, None] + d * jnp.log(2 * jnp.pi))).T


def mixture_log_prob(state: MixtureState, x):
    """[N] log-density of rows x [N, d]."""
    logw = jnp.log(jnp.maximum(state.weights, 1e-30))
    return jax.scipy.special.logsumexp(component_log_density(x, state.means, state.covs) + logw, -1)


def m_step(x, rw, floor, diagonal: bool, previous: MixtureState):
    """Weighted M-step from row-weighted responsibilities rw [N, k] (= w_i r_ik)."""
    d = x.shape[-1]
    nk = jnp.sum(rw, 0) + EPS                                            # [k]
    means = (rw.T @ x) / nk[:, None]
    diff = x[None] - means[:, None]                                      # [k, N, d]
    covs = jnp.einsum("nk,kni,knj->kij", rw, diff, diff) / nk[:, None, None]
    if diagonal:
        covs = jnp.eye(d) * jnp.diagonal(covs, axis1=1, axis2=2)[:, None, :]
    covs = covs + floor * jnp.eye(d)
    alive = nk > 1e-6 * jnp.sum(nk)
    means = jnp.where(alive[:, None], means, previous.means)
    covs = jnp.where(alive[:, None, None], covs, previous.covs)
    return MixtureState(nk / jnp.sum(nk), means, covs)


def em_step(state: MixtureState, x, w, floor, diagonal: bool):
    """One E-step then one M-step on rows x [N, d] with weights w [N]."""
    logp = component_log_density(x, state.means, state.covs) + jnp.log(jnp.maximum(state.weights, 1e-30))
    resp = jnp.exp(logp - jax.scipy.special.logsumexp(logp, -1, keepdims=True))
    return m_step(x, resp * w[:, None], floor, diagonal, state)


def kmeans_pp(key, x, w, k: int):
    """[k] centres [k, d] by greedy k-means++ seeding on rows x [N, d] with weights w [N].

    As scikit-learn's ``kmeans_plusplus``: each new centre is the best (lowest weighted potential
    sum_i w_i min_c |x_i - c|^2) of 2 + floor(ln k) candidates drawn proportional to w D^2.
    """
    trials = 2 + int(math.log(k))
    keys = jax.random.split(key, k)
    first = x[pick_rows(keys[0], w, 1)[0]]
    centres = jnp.zeros((k,) + x.shape[1:], x.dtype).at[0].set(first)
    dist = jnp.sum((x - first) ** 2, -1)

    def body(j, carry):
        centres, dist = carry
        score = w * dist
        score = jnp.where(jnp.sum(score) > 0, score, w)       # all rows on the centres: fall back to w
        cand = x[pick_rows(keys[j], score, trials)]                           # [trials, d]
        new = jnp.minimum(dist[None], jnp.sum((x[None] - cand[:, None]) ** 2, -1))  # [trials, N]
        best = jnp.argmin(new @ w)
        return centres.at[j].set(cand[best]), new[best]

    centres, _ = jax.lax.fori_loop(1, k, body, (centres, dist))
    return centres


def kmeans_pp_start(key, x, w, k: int, floor, diagonal: bool):
    """Mixture from k-means++ centres: nearest-centre hard assignment, then one M-step."""
    d = x.shape[-1]
    centres = kmeans_pp(key, x, w, k)
    nearest = jnp.argmin(jnp.sum((x[:, None] - centres[None]) ** 2, -1), -1)
    rw = jax.nn.one_hot(nearest, k) * w[:, None]
    fallback = MixtureState(jnp.full((k,), 1.0 / k), centres, jnp.broadcast_to(jnp.eye(d), (k, d, d)))
    return m_step(x, rw, floor, diagonal, fallback)


@register_family("mixture", MixtureModel)
def make_mixture(o: MixtureModel, source) -> Family:
    """Gaussian mixture fitted by EM (k-means++ or warm start)."""
    diagonal = o.covariance == "diag"
    k = o.components

    def run_em(state, x, w, floor):
        return jax.lax.fori_loop(0, o.em_iterations, lambda _, s: em_step(s, x, w, floor, diagonal), state)

    def init(key, x, w, knobs):
        floor = knobs["covariance_floor"]
        return run_em(kmeans_pp_start(key, x, w, k, floor, diagonal), x, w, floor)

    def fit(key, state, x, w, knobs):
        if o.init == "warm":
            return run_em(state, x, w, knobs["covariance_floor"])
        return init(key, x, w, knobs)

    def sample(key, state, n, knobs):
        kc, kz = jax.random.split(key)
        comp = pick_rows(kc, state.weights, n)
        chol = jnp.linalg.cholesky(state.covs)
        chol = jnp.where(jnp.isfinite(chol), chol, 0.0)
        z = jax.random.normal(kz, (n, state.means.shape[-1]))
        return state.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)

    return Family(init=init, fit=fit, sample=sample, log_prob=mixture_log_prob)
