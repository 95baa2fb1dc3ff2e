"""Linear regression (OLS, ridge 0) on a linear-regression truth y = x.w0 + sigma z,
x ~ N(0, s_x^2 I_d): E regression_error under ``replace`` and ``accumulate``.

With X [n, d] generation 0's design, M = (X^T X)^-1, Sigma = s_x^2 I the design covariance and
synthetic label noise s (``model.label_noise``): the OLS step adds u_g = M X^T eps_g, of
covariance s^2 M (sigma^2 M at g = 0), independent across generations (scl.families.regression).
E tr(Sigma M) = s_x^2 E tr (X^T X)^-1 = d / (n - d - 1) (inverse-Wishart mean, n > d + 1), so

* replace (``design: fixed`` or ``fresh``): E err_g = d/(n-d-1) (sigma^2 + g s^2)  (linear in g)
* accumulate (fixed design, ``synthetic_size`` = n: every batch on X, the pooled OLS is the mean
  of the per-batch solutions, e_g = e_{g-1} + u_g/(g+1)):
      E err_g = d/(n-d-1) (sigma^2 + s^2 sum_{k=2}^{g+1} 1/k^2)  <= d/(n-d-1)(sigma^2 + s^2 (pi^2/6 - 1))
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import plain


@register_theory("linear_regression", "OLS regression, replace / accumulate (fixed design): E regression_error")
def predict_regression(cfg):
    if cfg.model.name != "linear_regression" or getattr(cfg.truth, "name", None) != "linear_regression":
        return None
    if float(cfg.model.ridge) != 0.0 or not plain(cfg):
        return None
    n, G, d = cfg.loop.n, cfg.loop.generations, cfg.truth.features
    if n <= d + 1:
        return None
    regime = cfg.loop.regime
    if regime == "accumulate" and (cfg.model.design != "fixed" or cfg.loop.synthetic_rows != n):
        return None
    if regime not in ("replace", "accumulate"):
        return None
    sigma2, s2 = float(cfg.truth.noise) ** 2, float(cfg.model.label_noise) ** 2
    g = np.arange(G + 1, dtype=np.float64)
    if regime == "replace":
        noise = sigma2 + g * s2
    else:
        noise = sigma2 + s2 * np.concatenate([[0.0], np.cumsum(1.0 / (g[1:] + 1) ** 2)])
    return {"regression_error": d / (n - d - 1) * noise}
