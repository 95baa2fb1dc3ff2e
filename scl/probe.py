"""The per-generation probe: what sample-based metrics read, drawn once per generation.

``make_probe(ctx, needs)`` returns ``draw(key, model_state, knobs) -> Probe``; the engine calls it
once per generation and hands the same Probe to every metric, so all of them see the same model
samples (per-mode masses then sum to 1 exactly, and asking for more metrics draws nothing more).
Only what a selected metric ``needs`` is drawn (registry traits of the metrics):

  model   ``metrics.samples`` rows from the current model (its swept knobs applied)   [m, ...]
  truth   ``metrics.samples`` fresh rows from the truth (from its held-out split, for a finite
          dataset: scl.data.images)                                                  [m, ...]
  modes   the share of the model rows nearest to each true mode (one histogram)      [M]
  features  the truth's feature network (Source.features) applied once to the model rows and once
          to the truth rows: {"features": [m, F], "logits": [m, K]} each (implies model, truth)
  key     a key for a metric's own randomness (e.g. sliced Wasserstein's directions)
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp


class Probe(NamedTuple):
    key: jax.Array
    model: Optional[Any] = None      # [m, ...] model rows, or None when no metric needs them
    truth: Optional[Any] = None      # [m, ...] fresh truth rows
    modes: Optional[jax.Array] = None  # [M] share of the model rows nearest to each true mode
    model_features: Optional[dict] = None   # {"features": [m, F], "logits": [m, K]} of the model rows
    truth_features: Optional[dict] = None   # the same for the truth rows


def needs_of(names, table) -> frozenset:
    """Union of what the metrics ``names`` read from the probe ("modes" implies "model")."""
    needs = frozenset().union(*[table[n].traits.get("needs", frozenset()) for n in names])
    needs = needs | ({"model"} if "modes" in needs else set())
    return needs | ({"model", "truth"} if "features" in needs else set())


def make_probe(family, source, samples: int, needs: frozenset):
    """``draw(key, model_state, knobs) -> Probe`` drawing only what ``needs`` names."""

    def draw(key, state, knobs):
        k_model, k_truth, k_metric = jax.random.split(key, 3)
        model = family.sample(k_model, state, samples, knobs["model"]) if "model" in needs else None
        reference = source.heldout or source.sample
        truth = reference(k_truth, samples) if "truth" in needs else None
        modes = None
        if "modes" in needs:
            counts = jnp.bincount(source.assign(model), length=source.num_modes)
            modes = counts.astype(jnp.float32) / samples
        model_features = truth_features = None
        if "features" in needs:
            model_features, truth_features = source.features(model), source.features(truth)
        return Probe(k_metric, model, truth, modes, model_features, truth_features)

    return draw
