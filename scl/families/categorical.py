"""Categorical family on k categories: MLE from weighted counts, additive smoothing, temperature.

State: ``CategoricalState(probs [k])``. Rows are int category indices [N] with weights w [N].

* fit: p_i = (c_i + alpha) / (sum_j c_j + k alpha), c_i = sum of the weights of rows equal to i
  (alpha = ``smoothing``; 0 = MLE).
* sample: category i with probability proportional to p_i^(1/tau) (tau = ``temperature``;
  tau = 1 samples the model itself, tau < 1 sharpens, tau > 1 flattens: the closed-loop
  "heat death" setting), then cut to the ``top_k`` most probable categories (0 = all) and then
  to the smallest set of most probable categories whose probability reaches ``top_p`` (1 = all),
  renormalised each time: the order of language-model samplers (temperature, top-k, top-p).
  Ties are broken by category index. Both are knobs (sweepable in one program).

With alpha = 0 and tau = 1 the loop under ``replace`` is the Wright-Fisher model (THEORY.md 7).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.options import knob
from scl.families.base import Family
from scl.families.weighted import pick_rows, require_rows
from scl.registry import register_family


@dataclass(frozen=True)
class CategoricalModel:
    """``model: {family: categorical, smoothing, temperature}``."""

    tag_key = "family"
    row_weights = True   # its fit reads fractional row weights (loop.real_weight applies)
    name = "categorical"
    smoothing: float = knob(0.0, "additive (Laplace) smoothing alpha >= 0 added to every count", ge=0.0)
    temperature: float = knob(1.0, "sampling temperature tau > 0: sample proportional to p^(1/tau)", gt=0.0)
    top_k: float = knob(0, "sample only the top_k most probable categories (0 = no cut)", ge=0)
    top_p: float = knob(1.0, "then only the smallest most probable set of probability >= top_p "
                             "(1 = no cut)", gt=0.0, le=1.0)

    def validate(self, path):
        if float(self.top_k) != int(self.top_k):
            raise ConfigError(f"{path}.top_k", f"must be a whole number, got {self.top_k}")

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


def truncated(probs, top_k, top_p):
    """[k] probs cut to the top_k most probable (top_k <= 0: all), renormalised, then to the
    smallest most-probable set whose mass reaches top_p, renormalised. Ties: lower index first."""
    k = probs.shape[0]
    order = jnp.argsort(-probs, stable=True)
    rank = jnp.zeros((k,), jnp.int32).at[order].set(jnp.arange(k, dtype=jnp.int32))
    p = jnp.where((top_k <= 0) | (rank < top_k), probs, 0.0)
    p = p / jnp.sum(p)
    ranked = p[order]
    before = jnp.cumsum(ranked) - ranked            # mass of the more probable categories
    keep = (before < top_p)[rank]                    # the most probable category is always kept
    p = jnp.where(keep, p, 0.0)
    return p / jnp.sum(p)


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
        probs = truncated(tempered(state.probs, knobs["temperature"]), knobs["top_k"], knobs["top_p"])
        return pick_rows(key, probs, n).astype(jnp.int32)

    def log_prob(state, x):
        return jnp.log(state.probs[x])

    return Family(init=init, fit=fit, sample=sample, log_prob=log_prob)
