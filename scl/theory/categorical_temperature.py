"""Categorical family under ``replace`` with a temperature, top-k / top-p cut or smoothing: the
exact law of every step (scl.theory.composition_chain).

One temperature step: given the fitted p (= (c + alpha)/(n + k alpha) from counts c), the next
training counts are Mult(n, q) with q = truncate(p^(1/tau) / sum p^(1/tau)) (top_k, then top_p,
renormalised each time), so E p' = q when alpha = 0 and, for instance,
E simpson_diversity' = 1 - (1 - 1/n) sum q^2 - 1/n. Iterating over the C(n+k-1, k-1) count
vectors gives E tv, simpson_diversity, surviving_categories and the KLs (where finite) at every
generation exactly; the chain is used up to 1500 states (else None).
"""
from __future__ import annotations

from scl.registry import register_theory
from scl.theory.common import plain
from scl.theory.composition_chain import MAX_STATES, categorical_values, chain_size, run_chain, sampler_law
from scl.theory.wright_fisher import categorical_probs


@register_theory("categorical_temperature", "categorical with temperature / top-k / top-p / smoothing, "
                 "replace: exact chain on count vectors (tv, simpson_diversity, surviving_categories, KL)")
def predict_categorical_temperature(cfg):
    if cfg.model.name != "categorical" or cfg.loop.regime != "replace" or not plain(cfg):
        return None
    p0 = categorical_probs(cfg)
    n = cfg.loop.n
    if p0 is None or chain_size(n, len(p0)) > MAX_STATES:
        return None
    return run_chain(p0, n, cfg.loop.generations, float(cfg.model.smoothing),
                     lambda p: sampler_law(cfg.model, p), categorical_values(p0))
