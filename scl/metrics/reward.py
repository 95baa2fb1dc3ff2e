"""Metrics of curation: reward statistics, per-mode mass, diversity.

Each reads the probe's ``metrics.samples`` model rows (scl.probe, shared by every metric). The reward is the
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

import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric
from scl.rewards import make_reward


def _reward(ctx, name):
    cur = getattr(ctx.config, "curation", None)
    require(cur is not None, name, "a curation section (its reward is the one measured)")
    return make_reward(cur.reward, ctx.source)


@register_metric("expected_reward", doc="E_model[r], r the curation reward", needs=("model",),
                 long_name="expected reward E[r]", units="1")
def make_expected_reward(ctx):
    reward = _reward(ctx, "expected_reward")
    return lambda probe, s, knobs: jnp.mean(reward(probe.model))


@register_metric("exp_reward", doc="E_model[exp r], r the curation reward", needs=("model",),
                 long_name="expected exp-reward E[exp r]", units="1")
def make_exp_reward(ctx):
    reward = _reward(ctx, "exp_reward")
    return lambda probe, s, knobs: jnp.mean(jnp.exp(reward(probe.model)))


@register_metric("reward_var", doc="Var_model[r], r the curation reward", needs=("model",),
                 long_name="reward variance Var[r]", units="1")
def make_reward_var(ctx):
    reward = _reward(ctx, "reward_var")
    return lambda probe, s, knobs: jnp.var(reward(probe.model))


def _need_modes(ctx, name):
    require(ctx.source.assign is not None and ctx.source.num_modes > 0, name,
            "a truth made of modes (truth.kind: eight_gaussians, moons or circles)")


@register_metric("mode_mass", doc="share of model samples nearest to each true mode (one variable per mode)",
                 needs=("modes",),
                 long_name="mass of true mode", units="1")
def make_mode_mass(ctx):
    """Returns {mode_mass_i: fn}: one scalar metric per mode (expanded by make_metrics); all read
    the probe's one histogram, so they sum to 1."""
    _need_modes(ctx, "mode_mass")
    return {f"mode_mass_{i}": (lambda probe, s, knobs, i=i: probe.modes[i]) for i in range(ctx.source.num_modes)}


@register_metric("mode_entropy", doc="entropy (nats) of the model's per-mode masses", needs=("modes",),
                 long_name="entropy of the mode masses", units="nats")
def make_mode_entropy(ctx):
    _need_modes(ctx, "mode_entropy")

    def fn(probe, s, knobs):
        m = probe.modes
        return -jnp.sum(jnp.where(m > 0, m * jnp.log(jnp.where(m > 0, m, 1.0)), 0.0))
    return fn


@register_metric("diversity", doc="trace of the covariance of model samples", needs=("model",),
                 long_name="sample covariance trace", units="1")
def make_diversity(ctx):
    def fn(probe, s, knobs):
        x = probe.model
        x = x.reshape(x.shape[0], -1).astype(jnp.float32)
        return jnp.sum(jnp.var(x, 0, ddof=1))
    return fn
