"""Categorical truth and family under ``replace`` with K-wise Luce curation and a ``table``
reward: the exact curated law of every step.

One step (THEORY 5): the model's sampler law q (temperature / top-k / top-p of the fitted p)
gives K i.i.d. candidates per kept row; the kept category has the exact law
H(q)_i = sum_c Mult(c; K, q) c_i e^{beta r_i} / sum_j c_j e^{beta r_j} (``scl.curation.
exact_luce_law``, count vectors c of the K draws), so the next counts are Mult(n, H(q)) and, for
example, E p_1 = E_{c ~ Mult(n, p_0)} H(q(c / n)). Iterated on the count-vector chain
(scl.theory.composition_chain): E tv, simpson_diversity, surviving_categories, the KLs (where
finite) and expected_reward (E_model r = sum_i q_i r_i, the model's own samples) at every
generation, for chains up to 1500 states.
"""
from __future__ import annotations

import numpy as np

from scl.curation import exact_luce_law
from scl.registry import register_theory
from scl.theory.composition_chain import MAX_STATES, categorical_values, chain_size, run_chain, sampler_law
from scl.theory.wright_fisher import categorical_probs


@register_theory("categorical_luce", "categorical with K-wise Luce curation (table reward), replace: exact "
                 "curated law per step (tv, simpson_diversity, surviving_categories, KL, expected_reward)")
def predict_categorical_luce(cfg):
    cur = getattr(cfg, "curation", None)
    if cfg.model.name != "categorical" or cfg.loop.regime != "replace" or cur is None:
        return None
    if cur.name != "luce" or getattr(cfg, "correction", None) is not None or cur.reward.name != "table":
        return None
    p0 = categorical_probs(cfg)
    n = cfg.loop.n
    if p0 is None or chain_size(n, len(p0)) > MAX_STATES or len(cur.reward.values) != len(p0):
        return None
    reward = np.asarray(cur.reward.values, np.float64)
    K, beta = int(cur.K), float(cur.beta)
    values = categorical_values(p0)

    def with_reward(p, q):
        out = values(p, q)
        out["expected_reward"] = np.stack([sampler_law(cfg.model, row) for row in p]) @ reward
        return out
    def kept_law(p):
        with np.errstate(divide="ignore"):           # log 0 of a lost category (its terms are 0)
            return exact_luce_law(sampler_law(cfg.model, p), reward, K, beta)
    return run_chain(p0, n, cfg.loop.generations, float(cfg.model.smoothing), kept_law, with_reward)
