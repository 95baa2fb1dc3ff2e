"""Categorical family, MLE, sampled as it is (temperature 1, no top-k / top-p cut), ``replace``:
the Wright-Fisher model (THEORY 7) on k categories, p_0 the truth's probabilities.

Generation g is fitted on n draws (g = 0: real ones), so the counts make a Wright-Fisher chain
started from Mult(n, p_0); one category's count alone is the two-allele chain X' ~ Bin(n, X/n)
from X_0 ~ Bin(n, p_i), a Markov chain on 0..n computed exactly (transition matrix T [n+1, n+1]).
With t = g + 1:

    E simpson_diversity_g = (1 - sum p_0^2)(1 - 1/n)^t             (closed form)
    E surviving_categories_g = sum_i P(X_i,g > 0)                   (one step: sum_i 1 - (1 - p_i)^n)
    E tv_g = 1/2 sum_i E|X_i,g / n - p_i|,   E kl_model_data_g = sum_i E[q log(q / p_i)], q = X_i,g / n
    fixation: category i ends alone with probability p_i (E p_g = p_0); E surviving -> 1.

kl_data_model is +inf in expectation (a category is lost with positive probability) and not
predicted. Beyond k (n+1)^2 (G+1) = 2e8 operations only simpson_diversity is given.
"""
from __future__ import annotations

import numpy as np

from scl.registry import register_theory
from scl.theory.common import plain

MAX_WORK = 2e8      # k (n+1)^2 G multiply-adds of the per-category chains


def categorical_probs(cfg):
    """[k] float64 probabilities of a categorical / Zipf truth, else None."""
    if getattr(cfg.truth, "name", None) not in ("categorical", "zipf"):
        return None
    return np.asarray(cfg.truth.probabilities(), np.float64)


def samples_as_fitted(model, k: int) -> bool:
    """The sampler draws from the fitted probabilities unchanged."""
    return (float(model.temperature) == 1.0 and (int(model.top_k) <= 0 or int(model.top_k) >= k)
            and float(model.top_p) == 1.0)


def marginal_chain(p0, n: int, G: int):
    """[G+1, k, n+1]: law of each category's count at generations 0..G."""
    from scipy.stats import binom

    x = np.arange(n + 1)
    T = binom.pmf(x[None, :], n, x[:, None] / n)                    # [n+1, n+1] from x to y
    law = binom.pmf(x[None, :], n, p0[:, None])                     # [k, n+1]
    out = [law]
    for _ in range(G):
        law = law @ T
        out.append(law)
    return np.asarray(out)


@register_theory("wright_fisher", "categorical MLE, replace: E simpson_diversity, surviving_categories, tv, "
                 "kl_model_data (Wright-Fisher)")
def predict_wright_fisher(cfg):
    if cfg.model.name != "categorical" or cfg.loop.regime != "replace" or not plain(cfg):
        return None
    p0 = categorical_probs(cfg)
    if p0 is None or float(cfg.model.smoothing) != 0.0 or not samples_as_fitted(cfg.model, len(p0)):
        return None
    n, G = cfg.loop.n, cfg.loop.generations
    t = np.arange(1, G + 2, dtype=np.float64)
    out = {"simpson_diversity": (1 - np.sum(p0 ** 2)) * (1 - 1 / n) ** t}
    if len(p0) * (n + 1) ** 2 * (G + 1) > MAX_WORK:
        return out
    law = marginal_chain(p0, n, G)                                  # [G+1, k, n+1]
    q = np.arange(n + 1) / n
    out["surviving_categories"] = np.sum(1 - law[:, :, 0], -1)
    out["tv"] = 0.5 * np.sum(law * np.abs(q[None, None, :] - p0[None, :, None]), (1, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(q[None, :] > 0, q[None, :] * np.log(q[None, :] / p0[:, None]), 0.0)   # [k, n+1]
    terms = np.where(p0[:, None] > 0, terms, 0.0)
    out["kl_model_data"] = np.sum(law * terms[None], (1, 2))
    return out
