"""Linear regression as a supervised self-consuming loop (Dohmatob et al. 2024, "Model Collapse
Demystified"; Gerstgrasser et al. 2024, "Is Model Collapse Inevitable?").

Rows are ``{"x": [N, d], "y": [N]}`` with weights w [N]. State:
``RegressionState(weights [d], design [N0, d], design_count [], noise [])``.

* fit: weighted least squares / ridge without intercept,
  w_hat = argmin_w  sum_i w_i (y_i - x_i.w)^2 / sum_i w_i + ridge |w|^2
  (the loss is a weighted *mean*, so ``ridge`` means the same for any buffer size).
* sample(n): synthetic labels y = x.w_hat + label_noise z. The design x is
  ``fixed``: generation 0's real design, kept in the state (row i of a sample is real row
  i mod n0, n0 = the number of real rows; the mixers put them first), or ``fresh``: new x drawn
  from the truth every generation.
* log_prob(rows): conditional log N(y; x.w_hat, label_noise^2).

Exact result (tested): OLS (ridge 0), truth y = x.w0 + sigma z, synthetic label noise s, fixed
design X [n, d] with M = (X^T X)^-1, Sigma = design covariance. Write u_t = M X^T eps_t
(independent, covariance s^2 M, sigma^2 M for t = 0), e_t = w_t - w0, err_t = e_t^T Sigma e_t.

* replace: w_t = w_{t-1} + u_t, so e_t = u_0 + ... + u_t and
  E err_t = tr(Sigma M) (sigma^2 + t s^2): linear in t (also with a fresh design each generation).
* accumulate (batch s of labels made by model s-1, all on the same X): OLS on the stacked set is
  the mean of the per-batch solutions, b_s = w_{s-1} + u_s, which gives e_t = e_{t-1} + u_t/(t+1):
  E err_t = tr(Sigma M) (sigma^2 + s^2 sum_{k=2}^{t+1} 1/k^2) <= tr(Sigma M)(sigma^2 + s^2 (pi^2/6 - 1)):
  bounded.
For x ~ N(0, I_d), E tr(M) = d / (n - d - 1) (inverse-Wishart mean).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.options import knob, static
from scl.families.base import Family
from scl.families.weighted import require_rows
from scl.registry import register_family


@dataclass(frozen=True)
class RegressionModel:
    """``model: {family: linear_regression, ridge, label_noise, design}``."""

    tag_key = "family"
    row_weights = True   # its fit reads fractional row weights (loop.real_weight applies)
    name = "linear_regression"
    ridge: float = knob(0.0, "ridge strength lambda >= 0 (0 = ordinary least squares)", ge=0.0)
    label_noise: float = knob(1.0, "standard deviation of the noise added to synthetic labels", ge=0.0)
    design: Literal["fixed", "fresh"] = static(
        "fixed", "fixed: synthetic labels on generation 0's real x; fresh: new x from the truth each generation")

    def check(self, cfg):
        require_rows(cfg, "regression", self.name)
        d = cfg.truth.features
        if self.ridge == 0 and cfg.loop.n < d:
            raise ConfigError("loop.n", f"must be >= truth.features ({d}) for least squares "
                              f"(or set model.ridge > 0), got {cfg.loop.n}")


class RegressionState(NamedTuple):
    weights: jax.Array       # [d]
    design: jax.Array        # [N0, d] generation 0's x rows (used when design is fixed)
    design_count: jax.Array  # [] number of real rows at the front of ``design``
    noise: jax.Array         # [] label noise of the fitted model (for log_prob)


def ridge_solve(x, y, w, ridge):
    """[d] argmin sum_i w_i (y_i - x_i.b)^2 / sum w + ridge |b|^2 for x [N, d], y [N], w [N]."""
    total = jnp.sum(w)
    gram = (x.T * w) @ x / total + ridge * jnp.eye(x.shape[-1])
    return jnp.linalg.solve(gram, (x.T * w) @ y / total)


@register_family("linear_regression", RegressionModel)
def make_regression(o: RegressionModel, source) -> Family:
    """Least squares / ridge regression refitted on its own labels."""

    def fit(key, state, rows, w, knobs):
        b = ridge_solve(rows["x"], rows["y"], w, knobs["ridge"])
        return RegressionState(b, state.design, state.design_count, jnp.asarray(knobs["label_noise"], jnp.float32))

    def init(key, rows, w, knobs):
        count = jnp.sum(w > 0).astype(jnp.int32)
        start = RegressionState(jnp.zeros(rows["x"].shape[-1]), rows["x"], count, jnp.float32(0.0))
        return fit(key, start, rows, w, knobs)

    def sample(key, state, n, knobs):
        kx, ky = jax.random.split(key)
        if o.design == "fixed":
            x = state.design[jnp.arange(n) % state.design_count]
        else:
            x = source.sample(kx, n)["x"]
        return {"x": x, "y": x @ state.weights + knobs["label_noise"] * jax.random.normal(ky, (n,))}

    def log_prob(state, rows):
        r = rows["y"] - rows["x"] @ state.weights
        s = jnp.maximum(state.noise, 1e-12)
        return -0.5 * (r / s) ** 2 - jnp.log(s) - 0.5 * jnp.log(2 * jnp.pi)

    return Family(init=init, fit=fit, sample=sample, log_prob=log_prob)
