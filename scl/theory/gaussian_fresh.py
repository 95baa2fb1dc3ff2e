"""Gaussian family on a Gaussian truth, the fresh-data loop: ``fresh`` (k = round(f n) fresh
real rows + n - k rows of model g-1 each generation), and ``fresh`` or ``replace`` with the
``ideal`` corrector (each synthetic row swapped for a truth row w.p. rho = gamma/(1+gamma)).

A generation's n rows are J truth rows and L = n - J model rows, J = k + K, K ~ Bin(n - k, rho).
For groups of i.i.d. rows (counts n_i, means m_i, covariances C_i, N rows in all) the pooled
scatter has E S = sum_i n_i (1 - 1/N) C_i + sum_i n_i m_i m_i^T - (sum_i n_i m_i)(...)^T / N.
With the truth at the origin, model mean v = mu - mu_0, model covariance b Sigma (b =
``sampling_bias``), c = n (mle) or n - 1, in units of tr Sigma_0 (a = trace_ratio,
D = E|mu - mu_0|^2 / tr Sigma_0):

    a' = [(1 - 1/n)(E J + b E L a) + (E L - E L^2 / n) D] / c
    D' = [E J + b E L a + E L^2 D] / n^2
    a_0 = (n - 1)/c,  D_0 = 1/n

Exact at every finite g (linear in first moments). The stationary point solves the 2x2 linear
system (a*, D*) = (a', D')(a*, D*) (``fresh_stationary``); with no real rows (k = 0, rho = 0)
it is the collapse a* = 0 (mle). log det is given where the training set is all model rows
(k = 0, no correction: the replace closed form, scl.theory.gaussian_replace) or all real rows
(k = n: a fresh fit every generation, E logdet_ratio = sum_{j<d} psi((n-1-j)/2) + d log(2/c)).
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import gaussian_setting, ideal_correction
from scl.theory.gaussian_replace import diag_term, logdet_step, replace_closed_form


def _fresh_matrix(n: int, k: int, rho: float, estimator: str, b: float):
    """(A [2, 2], u [2]) with (a', D') = A (a, D) + u."""
    m = n - k
    EK, EK2 = m * rho, m * rho * (1 - rho) + (m * rho) ** 2
    EJ = k + EK
    EL = n - EJ
    EL2 = (n - k) ** 2 - 2 * (n - k) * EK + EK2        # E (m - K)^2
    c = n if estimator == "mle" else n - 1
    A = np.array([[(1 - 1 / n) * b * EL / c, (EL - EL2 / n) / c],
                  [b * EL / n ** 2, EL2 / n ** 2]])
    u = np.array([(1 - 1 / n) * EJ / c, EJ / n ** 2])
    return A, u


def fresh_recursion(n: int, k: int, rho: float, G: int, estimator: str, b: float):
    """(a [G+1], D [G+1]) of the fresh-data loop (units of tr Sigma_0)."""
    A, u = _fresh_matrix(n, k, rho, estimator, b)
    x = np.array([(n - 1) / (n if estimator == "mle" else n - 1), 1.0 / n])
    out = [x]
    for _ in range(G):
        x = A @ x + u
        out.append(x)
    out = np.asarray(out)
    return out[:, 0], out[:, 1]


def fresh_stationary(n: int, k: int, rho: float, estimator: str, b: float = 1.0):
    """(a*, D*): the fixed point of the recursion (the loop's long-run trace_ratio and mean error)."""
    A, u = _fresh_matrix(n, k, rho, estimator, b)
    return tuple(np.linalg.solve(np.eye(2) - A, u))


@register_theory("gaussian_fresh", "Gaussian fit, fresh real rows each generation (and/or ideal correction): "
                 "E trace_ratio, E mean_sqerr, finite-g recursion and stationary values")
def predict_gaussian_fresh(cfg):
    setting = gaussian_setting(cfg, ("fresh", "replace"))
    gamma = ideal_correction(cfg)
    if setting is None or gamma is None:
        return None
    n, G, d, tr0, estimator, b = setting
    if cfg.loop.regime == "replace" and gamma == 0.0:
        return None                              # gaussian_replace
    if estimator == "known_covariance":
        return None
    k = int(np.round(np.float32(cfg.loop.real_fraction) * n)) if cfg.loop.regime == "fresh" else 0
    if k == 0 and gamma == 0.0:
        return replace_closed_form(cfg)          # no real rows: the replace loop, log det included
    a, D = fresh_recursion(n, k, gamma / (1 + gamma), G, estimator, b)
    out = {"trace_ratio": a, "mean_sqerr": tr0 * D}
    if k == n:                                   # every generation a fresh fit on n real rows
        out["logdet_ratio"] = np.full(G + 1, logdet_step(cfg, n, d, estimator) + diag_term(cfg))
    return out
