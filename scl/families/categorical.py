"""Categorical family on k categories: MLE from weighted counts, additive smoothing, temperature.

State: ``CategoricalState(probs [k])``. Rows are int category indices [N] with weights w [N].

* fit: p_i = (c_i + alpha) / (sum_j c_j + k alpha), c_i = sum of the weights of rows equal to i
  (alpha = ``smoothing``; 0 = MLE).
* sample: category i with probability proportional to p_i^(1/tau) (tau = ``temperature``;
  tau = 1 samples the model itself, tau < 1 sharpens, tau > 1 flattens: the closed-loop
  "heat death" setting).

With alpha = 0 and tau = 1 the loop under ``replace`` is the Wright-Fisher model (THEORY.md 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from scl.options import knob
from scl.families.base import Family
from scl.families.weighted import pick_rows, require_rows
from scl.registry import register_family


@dataclass(frozen=True)
class CategoricalModel:
    """``model: {family: categorical, smoothing, temperature}``."""

    tag_key = "family"
    name = "categorical"
    smoothing: float = knob(0.0, "additive (Laplace) smoothing alpha >= 0 added to every count", ge=0.0)
    temperature: float = knob(1.0, "sampling temperature tau > 0: sample proportional to p^(1/tau)", gt=0.0)

    def check(self, cfg):
        require_rows(cfg, "categorical", self.name)


class CategoricalState(NamedTuple):
    probs: jax.Array  # [k]


def weighted_counts(x, w, k: int):
    """[k] sum of the weights w [N] of the rows x [N] (int) in each category."""
    return jax.ops.segment_sum(w, x, num_segments=k)


def tempered(probs, temperature):
    """[k] probabilities proportional to probs^(1/temperature) (zeros stay zero)."""
    logits = jnp.where(probs > 0, jnp.log(jnp.where(probs > 0, probs, 1.0)) / temperature, -jnp.inf)
    return jax.nn.softmax(logits)


@register_family("categorical", CategoricalModel)
def make_categorical(o: CategoricalModel, source) -> Family:
    """Categorical refitted from (smoothed) counts; sampled at a temperature."""
    k = int(source.params["probs"].shape[0])

    def fit(key, state, x, w, knobs):
        alpha = knobs["smoothing"]
        counts = weighted_counts(x, w, k)
        return CategoricalState((counts + alpha) / (jnp.sum(counts) + k * alpha))

    def init(key, x, w, knobs):
        return fit(key, None, x, w, knobs)

    def sample(key, state, n, knobs):
        return pick_rows(key, tempered(state.probs, knobs["temperature"]), n).astype(jnp.int32)

    def log_prob(state, x):
        return jnp.log(state.probs[x])

    return Family(init=init, fit=fit, sample=sample, log_prob=log_prob)
