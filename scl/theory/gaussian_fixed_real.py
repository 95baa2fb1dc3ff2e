"""Gaussian family on a Gaussian truth, the fixed-real-set loop (``fixed_real``: generation 0's n
real rows kept + M = round(lambda n) rows of model g-1), optionally with the ``ideal`` corrector
(K ~ Bin(M, rho) of the M synthetic rows swapped for fresh truth rows, rho = gamma/(1+gamma)).

Condition on the real set (mean xbar_r, scatter S_r, E S_r = (n-1) Sigma_0); write
u = mu_0 - xbar_r (E|u|^2 = tr Sigma_0 / n), v = mu - xbar_r for the model's mean. The pooled
scatter of the real set and groups of i.i.d. rows (counts n_i, means m_i, covariances C_i,
N = n + M rows) has E S = S_r + sum_i n_i (1 - 1/N) C_i + sum_i n_i m_i m_i^T
- (sum_i n_i m_i)(...)^T / N (means relative to xbar_r). With c = N (mle) or N - 1, b =
``sampling_bias`` and, in units of tr Sigma_0, a = trace_ratio, D = E|v|^2, X = E v.u, U = 1/n:

    a' = [n - 1 + (1 - 1/N)(E K + b E(M-K) a) + E K U + E(M-K) D
          - (E K^2 U + E(M-K)^2 D + 2 E K(M-K) X) / N] / c
    D' = [E K^2 U + E K + E(M-K)^2 D + b E(M-K) a + 2 E K(M-K) X] / N^2
    X' = [E K U + E(M-K) X] / N
    E|mu_g - mu_0|^2 / tr Sigma_0 = D - 2 X + U;   a_0 = (n-1)/c_0, D_0 = X_0 = 0

Exact at every finite g; stationary values from the 3x3 linear system (``fixed_real_stationary``).

Population level (THEORY 4, 6): scl's generation 0 is always fitted on the n real rows, so no
setting starts from a population-level model away from p_data; the population contraction is
this recursion's large-n limit: the model's mean error is multiplied by
E(M-K)/N -> lambda / ((1+lambda)(1+gamma)) per generation (``contraction_factor``), the
coefficient of D in D' is its square, and for n -> infinity the fixed point tends to the truth.
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import gaussian_setting, ideal_correction


def contraction_factor(lam: float, gamma: float = 0.0) -> float:
    """lambda / ((1 + lambda)(1 + gamma)): the population-level contraction per generation."""
    return lam / ((1 + lam) * (1 + gamma))


def _fixed_real_matrix(n: int, M: int, rho: float, estimator: str, b: float):
    """(A [3, 3], w [3]) with (a', D', X') = A (a, D, X) + w."""
    N = n + M
    c = N if estimator == "mle" else N - 1
    EK = M * rho
    EK2 = M * rho * (1 - rho) + EK ** 2
    EL = M - EK
    EL2 = M * rho * (1 - rho) + EL ** 2
    EKL = rho * (1 - rho) * M * (M - 1)
    U = 1.0 / n
    A = np.array([
        [(1 - 1 / N) * b * EL / c, (EL - EL2 / N) / c, -2 * EKL / N / c],
        [b * EL / N ** 2, EL2 / N ** 2, 2 * EKL / N ** 2],
        [0.0, 0.0, EL / N],
    ])
    w = np.array([(n - 1 + (1 - 1 / N) * EK + EK * U - EK2 * U / N) / c,
                  (EK2 * U + EK) / N ** 2,
                  EK * U / N])
    return A, w


def fixed_real_recursion(n: int, M: int, rho: float, G: int, estimator: str, b: float):
    """(trace_ratio [G+1], mean_sqerr / tr Sigma_0 [G+1]) of the fixed-real-set loop."""
    A, w = _fixed_real_matrix(n, M, rho, estimator, b)
    x = np.array([(n - 1) / (n if estimator == "mle" else n - 1), 0.0, 0.0])
    out = [x]
    for _ in range(G):
        x = A @ x + w
        out.append(x)
    out = np.asarray(out)
    return out[:, 0], out[:, 1] - 2 * out[:, 2] + 1.0 / n


def fixed_real_stationary(n: int, M: int, rho: float, estimator: str, b: float = 1.0):
    """(trace_ratio*, mean_sqerr* / tr Sigma_0): the recursion's fixed point."""
    A, w = _fixed_real_matrix(n, M, rho, estimator, b)
    a, D, X = np.linalg.solve(np.eye(3) - A, w)
    return a, D - 2 * X + 1.0 / n


@register_theory("gaussian_fixed_real", "Gaussian fit, fixed real set + lambda n synthetic rows (and ideal "
                 "correction): E trace_ratio, E mean_sqerr; population contraction lambda/((1+lambda)(1+gamma))")
def predict_gaussian_fixed_real(cfg):
    setting = gaussian_setting(cfg, ("fixed_real",))
    gamma = ideal_correction(cfg)
    if setting is None or gamma is None:
        return None
    n, G, d, tr0, estimator, b = setting
    if estimator == "known_covariance":
        return None
    M = int(np.round(np.float32(cfg.loop.lam_value) * n))
    a, e = fixed_real_recursion(n, M, gamma / (1 + gamma), G, estimator, b)
    return {"trace_ratio": a, "mean_sqerr": tr0 * e}
