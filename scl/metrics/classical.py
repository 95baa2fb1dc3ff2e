"""Metrics for the classical families: categorical distances, held-out NLL, mode coverage,
regression test error.

Each ``make(ctx)`` returns ``fn(probe, model_state, knobs) -> scalar`` (scl.probe).
"""
from __future__ import annotations

import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


# ------------------------------------------------------------------ categorical

def _categorical(ctx, name):
    require(ctx.config is not None and ctx.config.model.name == "categorical", name,
            "a categorical model (model.family: categorical)")
    require(ctx.source.params is not None and "probs" in ctx.source.params, name,
            "a categorical truth (truth.kind: categorical or zipf)")
    return ctx.source.params["probs"]


def kl(p, q):
    """KL(p || q) = sum_i p_i log(p_i / q_i) over [k] vectors (inf if q_i = 0 < p_i)."""
    ratio = jnp.where(p > 0, p / jnp.where(q > 0, q, 1.0), 1.0)
    terms = jnp.where(p > 0, p * jnp.log(ratio), 0.0)
    return jnp.where(jnp.any((p > 0) & (q <= 0)), jnp.inf, jnp.sum(terms))


@register_metric("tv", doc="total variation 1/2 sum |p_t - p_data| (categorical)",
                 long_name="total variation distance to the truth", units="1")
def make_tv(ctx):
    p0 = _categorical(ctx, "tv")
    return lambda probe, s, knobs: 0.5 * jnp.sum(jnp.abs(s.probs - p0))


@register_metric("kl_data_model", doc="KL(p_data || p_t) (categorical; inf once a true category is lost)",
                 long_name="KL(data ‖ model)", units="nats")
def make_kl_data_model(ctx):
    p0 = _categorical(ctx, "kl_data_model")
    return lambda probe, s, knobs: kl(p0, s.probs)


@register_metric("kl_model_data", doc="KL(p_t || p_data) (categorical)",
                 long_name="KL(model ‖ data)", units="nats")
def make_kl_model_data(ctx):
    p0 = _categorical(ctx, "kl_model_data")
    return lambda probe, s, knobs: kl(s.probs, p0)


@register_metric("surviving_categories", doc="number of categories with p_t > 0 (categorical)",
                 long_name="surviving categories", units="count")
def make_surviving(ctx):
    _categorical(ctx, "surviving_categories")
    return lambda probe, s, knobs: jnp.sum(s.probs > 0).astype(jnp.float32)


@register_metric("simpson_diversity", doc="1 - sum p_t^2, the chance two draws differ (categorical)",
                 long_name="Simpson diversity 1 − Σ p²", units="1")
def make_simpson(ctx):
    _categorical(ctx, "simpson_diversity")
    return lambda probe, s, knobs: 1.0 - jnp.sum(s.probs ** 2)


# ------------------------------------------------------------------ held-out likelihood

@register_metric("nll", doc="held-out negative log-likelihood -mean log p_t(x) over the probe's fresh truth rows",
                 needs=("truth",),
                 long_name="held-out negative log-likelihood", units="nats")
def make_nll(ctx):
    require(ctx.family.log_prob is not None, "nll", "a model family with a log-density")
    return lambda probe, state, knobs: -jnp.mean(ctx.family.log_prob(state, probe.truth))


# ------------------------------------------------------------------ modes

def _modes(ctx, name):
    require(ctx.source.assign is not None and ctx.source.num_modes > 0, name,
            "a truth made of separated modes (eight_gaussians, moons, circles)")
    return ctx.source.num_modes


@register_metric("modes_covered", doc="true modes holding at least metrics.mode_share of the model's samples",
                 needs=("modes",),
                 long_name="true modes covered", units="count")
def make_modes_covered(ctx):
    _modes(ctx, "modes_covered")
    share = ctx.options.mode_share
    return lambda probe, s, knobs: jnp.sum(probe.modes >= share).astype(jnp.float32)


@register_metric("mode_mass_min", doc="smallest share of the model's samples held by a true mode", needs=("modes",),
                 long_name="smallest mass of a true mode", units="1")
def make_mode_mass_min(ctx):
    _modes(ctx, "mode_mass_min")
    return lambda probe, s, knobs: jnp.min(probe.modes)


@register_metric("mode_mass_max", doc="largest share of the model's samples held by a true mode", needs=("modes",),
                 long_name="largest mass of a true mode", units="1")
def make_mode_mass_max(ctx):
    _modes(ctx, "mode_mass_max")
    return lambda probe, s, knobs: jnp.max(probe.modes)


# ------------------------------------------------------------------ regression

@register_metric("regression_error", doc="test error |w_t - w0|^2_Sigma of a linear regression",
                 long_name="regression test error |w − w₀|²_Σ", units="1")
def make_regression_error(ctx):
    require(ctx.config is not None and ctx.config.model.name == "linear_regression", "regression_error",
            "a linear regression model (model.family: linear_regression)")
    require(ctx.source.params is not None and "weights" in ctx.source.params, "regression_error",
            "a linear regression truth (truth.kind: linear_regression)")
    w0, sigma = ctx.source.params["weights"], ctx.source.params["design_cov"]

    def fn(probe, state, knobs):
        e = state.weights - w0
        return e @ sigma @ e
    return fn
