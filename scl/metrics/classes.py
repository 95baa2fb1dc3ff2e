"""Class metrics of image models through the truth's shipped classifier (scl.features).

  class_share    one variable per class, class_share_0 .. class_share_{K-1}: share of the probe's
                 model images the classifier assigns (argmax) to each class; they sum to 1.
  class_entropy  entropy (nats) of those shares: log K when balanced, 0 when one class took over.
  confidence     mean over model images of the classifier's largest softmax probability.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from scl.metrics.base import require
from scl.registry import register_metric


def class_shares(logits, num_classes: int):
    """[K] share of rows whose argmax class is each class; logits [m, K]."""
    return jnp.bincount(jnp.argmax(logits, 1), length=num_classes).astype(jnp.float32) / logits.shape[0]


def _classifier(ctx, name) -> int:
    require(ctx.source.features is not None, name,
            "an image truth with a shipped classifier (truth.kind: digits)")
    return int(ctx.source.params["num_classes"])


@register_metric("class_share", needs=("features",), long_name="share of model images in the class", units="1",
                 doc="share of model images the shipped classifier puts in each class (class_share_0 .. class_share_{K-1})")
def make_class_share(ctx):
    K = _classifier(ctx, "class_share")

    def one(c):
        return lambda probe, state, knobs: class_shares(probe.model_features["logits"], K)[c]
    return {f"class_share_{c}": one(c) for c in range(K)}


@register_metric("class_entropy", needs=("features",), long_name="entropy of the model's class shares", units="nats",
                 doc="entropy of the classifier's class shares of the model images (log K = balanced)")
def make_class_entropy(ctx):
    K = _classifier(ctx, "class_entropy")

    def entropy(probe, state, knobs):
        p = class_shares(probe.model_features["logits"], K)
        return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return entropy


@register_metric("confidence", needs=("features",), long_name="mean classifier confidence", units="1",
                 doc="mean over model images of the shipped classifier's largest softmax probability")
def make_confidence(ctx):
    _classifier(ctx, "confidence")
    return lambda probe, state, knobs: jnp.mean(jnp.max(jax.nn.softmax(probe.model_features["logits"]), 1))
