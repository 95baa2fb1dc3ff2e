"""Gaussian family on a Gaussian truth N(mu_0, Sigma_0), ``replace`` (fully synthetic), d dims.

Generation g is fitted on n rows: g = 0 on real rows, g >= 1 on rows of model g-1 drawn from
N(mu_{g-1}, b Sigma_{g-1}) (b = ``model.sampling_bias``). The scatter of k i.i.d. rows from
N(mu, C) is Wishart_d(n-1, C), det of W_d(n-1, I) = prod_{j<d} chi2_{n-1-j}, and the mean is
N(mu, C / n) independent of it. With c = n (mle) or n - 1 (unbiased), r = (n-1)/c, t = g + 1:

    E Sigma_g            = r^t b^g Sigma_0                      (trace_ratio: r^t b^g)
    E logdet_ratio_g     = t [sum_{j<d} psi((n-1-j)/2) + d log(2/c)] + g d log b
    E |mu_g - mu_0|^2    = sum_{s<=g} E tr(C_s) / n = tr(Sigma_0) / n sum_{s=0}^{g} (b r)^s
    (C_s the covariance generation s draws its rows from: Sigma_0, then b Sigma_{s-1})
    (mle, b = 1: tr(Sigma_0)(1 - r^t), the conservation law; unbiased: t tr(Sigma_0) / n).

``covariance: diag`` keeps the diagonal: the traces are unchanged and E log of each diagonal
entry follows the 1-D law, so logdet_ratio adds sum_j log Sigma_0,jj - log det Sigma_0 and uses
d psi((n-1)/2). ``estimator: known_covariance``: Sigma_g = Sigma_0 (ratio 1, logdet 0 or the
diag term) and E |mu_g - mu_0|^2 = tr(Sigma_0) (1 + g b) / n.
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import gaussian_setting, gaussian_truth, plain


def logdet_step(cfg, n: int, d: int, estimator: str) -> float:
    """E log det of a fit on n i.i.d. rows minus log det of their covariance (plus the diag term
    sum_j log Sigma_0,jj - log det Sigma_0 of a diagonal fit, for the first such fit)."""
    from scipy.special import digamma

    c = n if estimator == "mle" else n - 1
    js = np.zeros(d) if cfg.model.covariance == "diag" else np.arange(d)
    return float(np.sum(digamma((n - 1 - js) / 2.0)) + d * np.log(2.0 / c))


def diag_term(cfg) -> float:
    cov0 = gaussian_truth(cfg)[1]
    if cfg.model.covariance != "diag":
        return 0.0
    return float(np.sum(np.log(np.diag(cov0))) - np.linalg.slogdet(cov0)[1])


def replace_closed_form(cfg) -> dict:
    """The closed forms above for a Gaussian setting whose every generation g >= 1 trains on n
    rows of model g-1 (``replace``, or ``fresh`` with no real rows)."""
    n, G, d, tr0, estimator, b = gaussian_setting(cfg, (cfg.loop.regime,))
    g = np.arange(G + 1, dtype=np.float64)
    t = g + 1
    if estimator == "known_covariance":
        return {"trace_ratio": np.ones(G + 1), "logdet_ratio": np.full(G + 1, diag_term(cfg)),
                "mean_sqerr": tr0 * (1 + g * b) / n}
    r = (n - 1) / (n if estimator == "mle" else n - 1)
    return {
        "trace_ratio": r ** t * b ** g,
        "logdet_ratio": t * logdet_step(cfg, n, d, estimator) + g * d * np.log(b) + diag_term(cfg),
        "mean_sqerr": tr0 / n * np.cumsum((b * r) ** g),
    }


@register_theory("gaussian_replace", "Gaussian fit, replace: E Sigma_t, E log det Sigma_t, E|mu_t - mu_0|^2")
def predict_gaussian_replace(cfg):
    if gaussian_setting(cfg, ("replace",)) is None or not plain(cfg):
        return None
    return replace_closed_form(cfg)
