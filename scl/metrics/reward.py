"""Metrics of curation: reward statistics, per-mode mass, diversity.

Each draws ``metrics.samples`` rows from the model (its swept knobs applied). The reward is the
curation's (``curation.reward``); reward metrics refuse configs without a ``curation`` section.

  expected_reward  E_{p_t}[r]
  exp_reward       E_{p_t}[e^r]  (never decreases under Luce curation with beta = 1, THEORY 5)
  reward_var       Var_{p_t}[r]
  mode_mass        expands to mode_mass_0 .. mode_mass_{M-1}: share of model samples nearest to
                   each true mode (truths with ``assign``: eight_gaussians, moons, circles)
  mode_entropy     entropy (nats) of the per-mode masses; log M = all modes equally kept
  diversity        trace of the sample covariance of model samples (total variance)
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


def _reward(ctx, name):
    cur = getattr(ctx.config, "curation", None)
    require(cur is not None, name, "a curation section (its reward is the one measured)")
    from scl.rewards import make_reward

    return make_reward(cur.reward)


def _samples(ctx, key, state, knobs):
    return ctx.family.sample(key, state, ctx.options.samples, knobs["model"])


@register_metric("expected_reward", doc="E_model[r], r the curation reward")
def make_expected_reward(ctx):
    reward = _reward(ctx, "expected_reward")
    return lambda key, s, knobs: jnp.mean(reward(_samples(ctx, key, s, knobs)))


@register_metric("exp_reward", doc="E_model[exp r], r the curation reward")
def make_exp_reward(ctx):
    reward = _reward(ctx, "exp_reward")
    return lambda key, s, knobs: jnp.mean(jnp.exp(reward(_samples(ctx, key, s, knobs))))


@register_metric("reward_var", doc="Var_model[r], r the curation reward")
def make_reward_var(ctx):
    reward = _reward(ctx, "reward_var")
    return lambda key, s, knobs: jnp.var(reward(_samples(ctx, key, s, knobs)))


def _mode_masses(ctx, key, state, knobs):
    label = ctx.source.assign(_samples(ctx, key, state, knobs))
    return jnp.mean(jax.nn.one_hot(label, ctx.source.num_modes), 0)


def _need_modes(ctx, name):
    require(ctx.source.assign is not None and ctx.source.num_modes > 0, name,
            "a truth made of modes (truth.kind: eight_gaussians, moons or circles)")


@register_metric("mode_mass", doc="share of model samples nearest to each true mode (one variable per mode)")
def make_mode_mass(ctx):
    """Returns {mode_mass_i: fn}: one scalar metric per mode (expanded by make_metrics)."""
    _need_modes(ctx, "mode_mass")
    return {f"mode_mass_{i}": (lambda key, s, knobs, i=i: _mode_masses(ctx, key, s, knobs)[i])
            for i in range(ctx.source.num_modes)}


@register_metric("mode_entropy", doc="entropy (nats) of the model's per-mode masses")
def make_mode_entropy(ctx):
    _need_modes(ctx, "mode_entropy")

    def fn(key, s, knobs):
        m = _mode_masses(ctx, key, s, knobs)
        return -jnp.sum(jnp.where(m > 0, m * jnp.log(jnp.where(m > 0, m, 1.0)), 0.0))
    return fn


@register_metric("diversity", doc="trace of the covariance of model samples")
def make_diversity(ctx):
    def fn(key, s, knobs):
        x = _samples(ctx, key, s, knobs)
        x = x.reshape(x.shape[0], -1).astype(jnp.float32)
        return jnp.sum(jnp.var(x, 0, ddof=1))
    return fn
