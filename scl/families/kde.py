"""Kernel density estimator with an isotropic Gaussian kernel on its training rows.

    p(y) = (1/c) sum_{i < c} N(y; x_i, h^2 I)

State: ``KDEState(x [N, d], count c [], bandwidth h [])``: the training rows themselves, N the
mixer's buffer size, rows [0, c) present (the mixers' 0/1 weights put the rows first; a count
rather than a weight vector keeps a large accumulate buffer's state to the rows). Bandwidth rule
(static ``bandwidth_rule``):

* ``fixed``: h = ``bandwidth`` (a knob: sweepable inside one program);
* ``size``: h = ``bandwidth`` m^(-1/(d+4)), m the rows present in this generation's training set
  (the Scott rate in the training-set size, with a fixed scale: under accumulate or with more
  synthetic rows the kernel narrows, as in Fu et al. 2024's KDE analysis);
* ``scott``: h = s n_eff^(-1/(d+4));   ``silverman``: h = s (n_eff (d+2)/4)^(-1/(d+4)),
  recomputed every generation, with s^2 the mean over coordinates of the weighted variance
  and n_eff = (sum w)^2 / sum w^2 (the row count for 0/1 weights). ``ddof: 0`` (default) takes
  the MLE variance; ``ddof: 1`` takes scipy.stats.gaussian_kde's unbiased one (scatter divided by
  sum w - sum w^2 / sum w, i.e. n - 1 for 0/1 weights): in 1-D h is then exactly scipy's kernel
  standard deviation, sqrt(gaussian_kde(x, bw_method).covariance) (tested).

Sampling picks one of the training rows uniformly (the mixers' weights are 1 on the rows present,
0 on padding), then adds h z, z ~ N(0, I).

Exact result (tested): under ``replace`` with a fixed h, let S_t^2 be the MLE variance (trace, for
d > 1) of generation t's n training rows. Given them, every sample has variance S_t^2 + d h^2 (a
uniformly picked row plus independent kernel noise), and the MLE variance of n i.i.d. draws has
expectation (n-1)/n times the variance, so with r = (n-1)/n

    E S_{t+1}^2 = r (E S_t^2 + d h^2),   E S_0^2 = r tr(Sigma_0)
    E S_t^2 = r^(t+1) tr(Sigma_0) + d h^2 (n - 1) (1 - r^t)

(t = generation index; generation t >= 1 trains on samples of model t-1). The spread does not
collapse: it forgets the truth and tends to (n-1) d h^2, whatever the truth was.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from scl.options import knob, static
from scl.families.base import Family
from scl.families.weighted import effective_size, present_count, require_rows
from scl.registry import register_family
from scl.rng import uniform_below


@dataclass(frozen=True)
class KDEModel:
    """``model: {family: kde, bandwidth_rule, bandwidth}``."""

    tag_key = "family"
    name = "kde"
    bandwidth_rule: Literal["fixed", "size", "scott", "silverman"] = static(
        "fixed", "fixed: h = bandwidth; size: h = bandwidth m^(-1/(d+4)), m the training rows present; "
                 "scott / silverman: recomputed from the data every generation")
    bandwidth: float = knob(0.1, "kernel standard deviation h (fixed), or its scale (size)", gt=0.0)
    ddof: Literal[0, 1] = static(
        0, "scott / silverman: 0 = MLE data variance; 1 = unbiased, scipy.stats.gaussian_kde's convention")

    def check(self, cfg):
        require_rows(cfg, "vector", self.name)


class KDEState(NamedTuple):
    x: jax.Array          # [N, d] training rows
    count: jax.Array      # [] int32: rows [0, count) are present, the rest padding
    bandwidth: jax.Array  # [] kernel standard deviation h


def rule_bandwidth(x, w, rule: str, ddof: int = 0):
    """Scott's or Silverman's bandwidth [] for rows x [N, d] with weights w [N]; ``ddof=1``:
    unbiased variance as scipy's gaussian_kde (denominator sum w - sum w^2 / sum w)."""
    d = x.shape[-1]
    total = jnp.sum(w)
    mean = jnp.sum(w[:, None] * x, 0) / total
    denom = total - jnp.sum(w ** 2) / total if ddof == 1 else total
    var = jnp.sum(w[:, None] * (x - mean) ** 2, 0) / denom
    s = jnp.sqrt(jnp.mean(var))
    n = effective_size(w)
    factor = n if rule == "scott" else n * (d + 2) / 4.0
    return s * factor ** (-1.0 / (d + 4))


def size_bandwidth(scale, count, d: int):
    """[] h = scale count^(-1/(d+4)) for a training set of ``count`` rows in d dimensions."""
    m = jnp.maximum(count, 1).astype(jnp.float32)
    return jnp.asarray(scale, jnp.float32) * m ** (-1.0 / (d + 4))


def kde_log_prob(state: KDEState, y):
    """[m] log-density of rows y [m, d] under the KDE."""
    d = y.shape[-1]
    h = state.bandwidth
    sq = (jnp.sum(y ** 2, 1)[:, None] + jnp.sum(state.x ** 2, 1)[None] - 2 * y @ state.x.T)
    present = jnp.arange(state.x.shape[0]) < state.count
    comp = jnp.where(present[None], -0.5 * jnp.clip(sq, 0.0) / h ** 2, -jnp.inf)
    norm = jnp.log(state.count.astype(jnp.float32)) + d * jnp.log(h) + 0.5 * d * jnp.log(2 * jnp.pi)
    return jax.scipy.special.logsumexp(comp, -1) - norm


@register_family("kde", KDEModel)
def make_kde(o: KDEModel, source) -> Family:
    """Gaussian-kernel density estimator (fixed, size-following, Scott or Silverman bandwidth)."""

    def fit(key, state, x, w, knobs):
        if o.bandwidth_rule == "fixed":
            h = jnp.asarray(knobs["bandwidth"], jnp.float32)
        elif o.bandwidth_rule == "size":
            h = size_bandwidth(knobs["bandwidth"], present_count(w), x.shape[-1])
        else:
            h = rule_bandwidth(x, w, o.bandwidth_rule, o.ddof)
        return KDEState(x, present_count(w), h)

    def init(key, x, w, knobs):
        return fit(key, None, x, w, knobs)

    def sample(key, state, n, knobs):
        kr, kz = jax.random.split(key)
        idx = uniform_below(kr, jnp.maximum(state.count, 1), (n,))
        d = state.x.shape[-1]
        noise = jax.random.normal(kz, (n * d,)).reshape(n, d)     # a flat draw is faster under vmap
        return state.x[idx] + state.bandwidth * noise

    return Family(init=init, fit=fit, sample=sample, log_prob=kde_log_prob,
                  training_set=lambda s: (s.x, s.count))
