"""The exact Markov chain of a categorical loop under ``replace`` on count vectors (helper).

States: the C(n+k-1, k-1) count vectors c of n draws on k categories. Generation 0's counts are
Mult(n, p_0); the model fitted on c is p(c) = (c + alpha) / (n + k alpha) (``smoothing``), and
generation g+1's counts are Mult(n, q(p(c))) with q the law one kept row is drawn from (the
sampler's temperature / top-k / top-p, then curation). Expectations of any function of p(c)
follow exactly: law_{g+1} = law_g P, P[c, c'] = Mult(c'; n, q(p(c))).
"""
from __future__ import annotations

from itertools import combinations
from math import comb

import numpy as np

MAX_STATES = 1500


def compositions(n: int, k: int) -> np.ndarray:
    """[S, k] every count vector of n draws on k categories (stars and bars)."""
    out = []
    for bars in combinations(range(n + k - 1), k - 1):
        out.append(np.diff(np.concatenate([[-1], bars, [n + k - 1]])) - 1)
    return np.asarray(out, np.int64)


def chain_size(n: int, k: int) -> int:
    return comb(n + k - 1, k - 1)


def multinomial_log_pmf(states: np.ndarray, q: np.ndarray) -> np.ndarray:
    """[R, S]: log Mult(states[s]; n, q[r]) for q [R, k] and states [S, k]."""
    from scipy.special import gammaln

    n = states[0].sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        logq = np.log(q)                                                   # [R, k]
        lin = np.where(states[None, :, :] > 0, states[None] * logq[:, None, :], 0.0).sum(-1)
    return gammaln(n + 1) - gammaln(states + 1).sum(-1)[None] + lin


def tempered(p, temperature):
    """[..., k] p^(1/temperature) renormalised (zeros stay zero): the family's ``tempered``."""
    with np.errstate(divide="ignore"):
        logits = np.where(p > 0, np.log(np.where(p > 0, p, 1.0)) / temperature, -np.inf)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def truncated(p, top_k: int, top_p: float):
    """[k] p cut to the top_k most probable then to the smallest most probable set of mass >=
    top_p, renormalised each time (ties: lower index first): the family's ``truncated``."""
    k = p.shape[0]
    order = np.argsort(-p, kind="stable")
    rank = np.empty(k, np.int64)
    rank[order] = np.arange(k)
    p = np.where((top_k <= 0) | (rank < top_k), p, 0.0)
    p = p / p.sum()
    ranked = p[order]
    before = np.cumsum(ranked) - ranked
    p = np.where((before < top_p)[rank], p, 0.0)
    return p / p.sum()


def sampler_law(model, p):
    """[k] law of one row sampled from a categorical model with probabilities p [k]."""
    return truncated(tempered(p, float(model.temperature)), int(model.top_k), float(model.top_p))


def run_chain(p0, n: int, G: int, alpha: float, kept_law, values):
    """{name: [G+1]} expectations of ``values(p [S, k]) -> {name: [S]}`` at generations 0..G.
    ``kept_law(p [k]) -> [k]``: the law of a row the next generation trains on."""
    k = len(p0)
    states = compositions(n, k)
    p = (states + alpha) / (n + k * alpha)                                 # [S, k] fitted models
    q = np.stack([kept_law(row) for row in p])                             # [S, k]
    P = np.exp(multinomial_log_pmf(states, q))                             # [S, S]
    law = np.exp(multinomial_log_pmf(states, p0[None]))[0]                 # [S]
    per_state = values(p, q)
    out = {name: np.empty(G + 1) for name in per_state}
    for g in range(G + 1):
        for name, v in per_state.items():
            out[name][g] = law @ v
        law = law @ P
    return out


def categorical_values(p0):
    """``values(p [S, k], q [S, k])`` for tv, simpson_diversity, surviving_categories and both
    KLs (a KL only where finite on every state)."""
    def values(p, q):
        with np.errstate(divide="ignore", invalid="ignore"):
            kl_md = np.where(p > 0, p * np.log(p / np.where(p0 > 0, p0, 1.0)), 0.0).sum(-1)
            kl_dm = np.where(p0 > 0, p0 * np.log(p0 / p), 0.0).sum(-1)
        out = {"tv": 0.5 * np.abs(p - p0).sum(-1), "simpson_diversity": 1 - (p ** 2).sum(-1),
               "surviving_categories": (p > 0).sum(-1).astype(np.float64)}
        if np.all(np.isfinite(kl_md)):
            out["kl_model_data"] = kl_md
        if np.all(np.isfinite(kl_dm)):
            out["kl_data_model"] = kl_dm
        return out
    return values
