"""Gaussian family on a Gaussian truth, ``accumulate``: generation g fits the pool of the n real
rows and g synthetic batches of m = ``synthetic_size`` rows, batch s drawn from model s-1 with
covariance b Sigma_{s-1} (b = ``model.sampling_bias``).

Pool size N_g = n + g m, fit denominator c_g = N_g (mle) or N_g - 1 (unbiased). The model's mean
is the pool's mean, so adding m i.i.d. rows of covariance b Sigma to a pool of scatter S gives
(Chan's update) E S_g = S_{g-1} + m (N_g - 1) / N_g b Sigma_{g-1}, and the pool mean moves by
m / N_g times the batch mean's error. In units of tr(Sigma_0), with a_g = E tr Sigma_g / tr Sigma_0
(trace_ratio) and e_g = E|mu_g - mu_0|^2 / tr Sigma_0:

    s_0 = n - 1,   s_g = s_{g-1} + m b (N_g - 1) / N_g a_{g-1},   a_g = s_g / c_g
    e_0 = 1 / n,   e_g = e_{g-1} + m b a_{g-1} / N_g^2

For mle, m = n, b = 1 this is THEORY 3: E Sigma_T = Sigma_0 prod_{k=1}^{T} (1 - 1/(n k^2)) (T = g+1)
-> sin(pi/sqrt n)/(pi/sqrt n) Sigma_0 (no collapse) and e = 1 - a (conservation).
``known_covariance``: a = 1, e_g = e_{g-1} + m b / N_g^2.
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import gaussian_setting, plain


def accumulate_recursion(n: int, m: int, G: int, estimator: str, b: float):
    """(a [G+1], e [G+1]): E tr Sigma_g and E|mu_g - mu_0|^2 in units of tr Sigma_0."""
    a, e = np.empty(G + 1), np.empty(G + 1)
    known = estimator == "known_covariance"
    s = n - 1.0
    a[0] = 1.0 if known else s / (n if estimator == "mle" else n - 1)
    e[0] = 1.0 / n
    for g in range(1, G + 1):
        N = n + g * m
        s += m * b * (N - 1) / N * a[g - 1]
        a[g] = 1.0 if known else s / (N if estimator == "mle" else N - 1)
        e[g] = e[g - 1] + m * b * a[g - 1] / N ** 2
    return a, e


@register_theory("gaussian_accumulate", "Gaussian fit, accumulate: E Sigma_T product formula, E|mu_T - mu_0|^2")
def predict_gaussian_accumulate(cfg):
    setting = gaussian_setting(cfg, ("accumulate",))
    if setting is None or not plain(cfg):
        return None
    n, G, d, tr0, estimator, b = setting
    a, e = accumulate_recursion(n, cfg.loop.synthetic_rows, G, estimator, b)
    return {"trace_ratio": a, "mean_sqerr": tr0 * e}
