"""Exponential tilt of curation (``curation.rule: tilt``) on a Gaussian model: closed forms.

One step (any reward with a quadratic form r(x) = -x^T A x / 2 + b.x + const, beta >= 0):
N(mu, Sigma) e^{beta r} / Z = N(m, C) with precision C^-1 = Sigma^-1 + beta A and
m = C (Sigma^-1 mu + beta b) (:func:`tilted_gaussian_law`). Linear reward (A = 0, b = a):
N(mu + beta Sigma a, Sigma). Quadratic -s|x - c|^2 (A = 2 s I, b = 2 s c):
C = (Sigma^-1 + 2 beta s I)^-1, m = C (Sigma^-1 mu + 2 beta s c).

The loop (:func:`predict_tilt`): ``replace`` with n rows, exact tilt, a linear reward
r = a.x + bias, the Gaussian family (full covariance; mle, unbiased or known_covariance), sampling
bias c, a Gaussian truth N(m*, S). Generation s samples N(mu_s + beta c Sigma_s a, c Sigma_s), so

    mu_{s+1} = mu_s + beta c Sigma_s a + xi_s,  xi_s ~ N(0, c Sigma_s / n),
    Sigma_{s+1} = (c / D) L_s W_s L_s^T,   Sigma_s = L_s L_s^T,  W_s ~ Wishart_d(k = n - 1, I),

with D = n (mle) or n - 1 (unbiased), xi_s, W_s independent of each other and of the past
(mean and scatter of Gaussian rows are independent); known_covariance keeps Sigma_s = S.
Generation 0 fits n truth rows: mu_0 ~ N(m*, S / n), Sigma_0 = S^{1/2} W S^{1/2} / D.
With f = c k / D (E[Sigma_{s+1} | Sigma_s] = f Sigma_s; f = 1 and Sigma_s = S for known_covariance):

    E Sigma_s = f^s E Sigma_0,            E mu_t = m* + beta c sum_{s<t} E Sigma_s a,
    E|mu_t - m*|^2 = tr S / n + (c / n) sum_{s<t} tr E Sigma_s
                     + beta^2 c^2 [sum_{s<t} a^T M_s a + 2 sum_{s<s'<t} f^{s'-s} a^T M_s a],

M_s = E[Sigma_s^2] (E[Sigma_s Sigma_s'] = f^{s'-s} M_s for s' >= s; cross terms vanish since xi_s
has mean 0 given the whole covariance path). The Wishart identities E[W A W] = k(k+1) A +
k tr(A) I and E[tr(A W) W] = k^2 tr(A) I + 2 k A close the recursion on (M_s, N_s = E[tr(Sigma_s) Sigma_s]):

    M_{s+1} = (c/D)^2 [k(k+1) M_s + k N_s],    N_{s+1} = (c/D)^2 [2k M_s + k^2 N_s],

from M_0 = [k(k+1) S^2 + k tr(S) S] / D^2, N_0 = [2k S^2 + k^2 tr(S) S] / D^2. Reported metrics:
mean_sqerr = |mu_t - m*|^2, expected_reward = a.E mu_t + bias, trace_ratio = tr E Sigma_t / tr S,
logdet_ratio (the covariance chain is the untilted one: (t+1)(E log det W - d log D) + t d log c,
E log det W = sum_{i<d} psi((k - i)/2) + d log 2). Host-side NumPy only.
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory


def tilted_gaussian_law(mean, cov, A, b, beta):
    """N(mean [d], cov [d, d]) tilted by e^{beta r}, r = -x^T A x / 2 + b.x: (mean' [d], cov' [d, d])
    in float64 through the precision (the reference the sampler is tested against)."""
    mean, cov, A, b = (np.asarray(v, np.float64) for v in (mean, cov, A, b))
    precision = np.linalg.inv(cov) + beta * A
    tilted = np.linalg.inv(precision)
    return tilted @ (np.linalg.solve(cov, mean) + beta * b), tilted


def quadratic_tilt_law(mean, cov, scale, target, beta):
    """One step of the quadratic reward -scale |x - target|^2: (mean' [d], cov' [d, d])."""
    d = len(mean)
    return tilted_gaussian_law(mean, cov, 2.0 * scale * np.eye(d), 2.0 * scale * np.asarray(target, float), beta)


def tilt_loop_moments(n: int, G: int, truth_mean, truth_cov, a, beta: float, sampling_bias: float = 1.0,
                      estimator: str = "mle"):
    """(E mu_t [G+1, d], E|mu_t - m*|^2 [G+1], E Sigma_t [G+1, d, d]) of the replace loop with an
    exact linear tilt (derivation in the module docstring)."""
    S = np.asarray(truth_cov, np.float64)
    a = np.asarray(a, np.float64)
    c, k = float(sampling_bias), n - 1
    trS = np.trace(S)
    if estimator == "known_covariance":
        f, sig0 = 1.0, S
        M = [S @ S] * (G + 1)
    else:
        D = n if estimator == "mle" else n - 1
        f, sig0 = c * k / D, k / D * S
        m_s = (k * (k + 1) * S @ S + k * trS * S) / D ** 2
        n_s = (2 * k * S @ S + k ** 2 * trS * S) / D ** 2
        M = []
        for _ in range(G + 1):
            M.append(m_s)
            m_s, n_s = (c / D) ** 2 * (k * (k + 1) * m_s + k * n_s), (c / D) ** 2 * (2 * k * m_s + k ** 2 * n_s)
    sigma = np.stack([f ** s * sig0 for s in range(G + 1)])                 # E Sigma_s
    shift = beta * c * np.concatenate([np.zeros((1, len(a))), np.cumsum(sigma[:-1] @ a, 0)])
    mean = np.asarray(truth_mean, np.float64) + shift
    aMa = np.array([a @ m @ a for m in M])
    sq = np.empty(G + 1)
    for t in range(G + 1):
        drift = sum(aMa[s] * (1.0 + 2.0 * sum(f ** (u - s) for u in range(s + 1, t))) for s in range(t))
        sq[t] = trS / n + c / n * sum(np.trace(sigma[s]) for s in range(t)) + (beta * c) ** 2 * drift
    return mean, sq, sigma


def _setting(cfg):
    """The tilt loop's parameters from one sweep point, or None when ``cfg`` is not that setting."""
    cur, model, loop = getattr(cfg, "curation", None), cfg.model, cfg.loop
    if cur is None or cur.name != "tilt" or getattr(cfg, "correction", None) is not None:
        return None
    if cur.method == "resample" or cur.reward.name != "linear":
        return None
    if model.name != "gaussian" or model.covariance != "full" or loop.regime != "replace":
        return None
    if getattr(cfg.truth, "name", None) != "gaussian":
        return None
    truth_mean, truth_cov = cfg.truth.params()
    return (loop.n, loop.generations, np.asarray(truth_mean, float), np.asarray(truth_cov, float),
            np.asarray(cur.reward.weights, float), float(cur.reward.bias), float(cur.beta),
            float(model.sampling_bias), model.estimator)


@register_theory("tilt", doc="replace loop with an exact linear tilt on the Gaussian family: "
                 "E mu_t, E|mu_t - mu*|^2, E reward, E tr Sigma_t, E log det Sigma_t")
def predict_tilt(cfg):
    """{metric: [G+1]} for the replace loop with an exact linear tilt, or None."""
    setting = _setting(cfg)
    if setting is None:
        return None
    n, G, m_star, S, a, bias, beta, c, estimator = setting
    mean, sq, sigma = tilt_loop_moments(n, G, m_star, S, a, beta, c, estimator)
    d = len(a)
    out = {"mean_sqerr": sq, "expected_reward": mean @ a + bias,
           "trace_ratio": np.trace(sigma, axis1=1, axis2=2) / np.trace(S)}
    t = np.arange(G + 1)
    if estimator == "known_covariance":
        out["logdet_ratio"] = np.zeros(G + 1)
    elif n - 1 >= d:
        from scipy.special import digamma

        D = n if estimator == "mle" else n - 1
        elog_w = sum(digamma((n - 1 - i) / 2.0) for i in range(d)) + d * np.log(2.0)
        out["logdet_ratio"] = (t + 1) * (elog_w - d * np.log(D)) + t * d * np.log(c)
    return out
