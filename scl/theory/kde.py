"""Kernel density estimator with a fixed bandwidth h on a Gaussian truth: E kde_variance under
``replace`` and ``accumulate``.

A KDE sample is a uniformly picked training row plus N(0, h^2 I) noise, so given the training set
(c rows of scatter S) its rows are i.i.d. with mean xbar and total variance tr(S)/c + d h^2 (the
KDE's own variance, metric ``kde_variance`` = tr(S)/c + d h^2). Units of tr Sigma_0, q = d h^2 /
tr Sigma_0, r = (n-1)/n, s_g = E tr S_g / tr Sigma_0:

* replace (n rows from model g-1): s_g = r n (s_{g-1}/n + q), so with V_g = s_g / n + q
      E V_g / tr Sigma_0 = r^(g+1) + q (n-1)(1 - r^g) + q = r V_{g-1} + q
  the finite-n shrink factor r per generation, h^2 d added: V -> n q = n d h^2 (forgets the truth).
* accumulate (pool N_g = n + g m rows; m rows of model g-1 added): by Chan's update
      s_g = s_{g-1} + m (N_g - 1)/N_g (s_{g-1}/N_{g-1} + q),   V_g = s_g / N_g + q,   s_0 = n - 1.
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import gaussian_truth, plain


@register_theory("kde_fixed_bandwidth", "KDE with a fixed bandwidth, replace / accumulate: E kde_variance")
def predict_kde(cfg):
    if cfg.model.name != "kde" or cfg.model.bandwidth_rule != "fixed" or not plain(cfg):
        return None
    if cfg.loop.regime not in ("replace", "accumulate"):
        return None
    truth = gaussian_truth(cfg)
    if truth is None:
        return None
    n, G = cfg.loop.n, cfg.loop.generations
    d, tr0 = truth[1].shape[0], float(np.trace(truth[1]))
    q = d * float(cfg.model.bandwidth) ** 2 / tr0
    s = np.empty(G + 1)
    N = np.array([n + (g * cfg.loop.synthetic_rows if cfg.loop.regime == "accumulate" else 0)
                  for g in range(G + 1)], np.float64)
    s[0] = n - 1.0
    for g in range(1, G + 1):
        if cfg.loop.regime == "replace":
            s[g] = (n - 1) * (s[g - 1] / n + q)
        else:
            m = N[g] - N[g - 1]
            s[g] = s[g - 1] + m * (N[g] - 1) / N[g] * (s[g - 1] / N[g - 1] + q)
    return {"kde_variance": tr0 * (s / N + q)}
