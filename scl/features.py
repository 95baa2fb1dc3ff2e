"""The feature networks that ship with scl: a small CNN classifier per embedded image dataset.

``FeatureNet.apply(x [n, D]) -> {"features": [n, 128], "logits": [n, K]}`` on image rows'
flattened pixels in [-1, 1]. The feature layer is the CNN's penultimate (128 units, after ReLU);
the image metrics (Frechet distance, precision/recall, ...) are computed in that space, so their
values are comparable only between runs that use the same network (never with Inception-based FID).

Weights: ``scl/data/weights/NAME_cnn.msgpack`` (flax.serialization), written by the deterministic
``scripts/train_feature_net.py --dataset NAME``, trained on the dataset's train split only.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from flax import serialization

WEIGHTS_DIR = Path(__file__).resolve().parent / "data" / "weights"
FEATURES = 128


class CNN(nn.Module):
    """conv3x3(32) ReLU, conv3x3(64) ReLU, 2x2 average pool, dense 128 ReLU (features), dense K."""

    num_classes: int

    @nn.compact
    def __call__(self, images):                    # [n, H, W, C]
        h = nn.relu(nn.Conv(32, (3, 3))(images))
        h = nn.relu(nn.Conv(64, (3, 3))(h))
        h = nn.avg_pool(h, (2, 2), (2, 2))
        features = nn.relu(nn.Dense(FEATURES)(h.reshape(h.shape[0], -1)))
        return features, nn.Dense(self.num_classes)(features)


class FeatureNet(NamedTuple):
    module: CNN
    params: Any
    image_shape: tuple

    def apply(self, x):
        """x [n, D] in [-1, 1] -> {"features": [n, 128], "logits": [n, K]}."""
        features, logits = self.module.apply(self.params, jnp.reshape(x, (x.shape[0],) + tuple(self.image_shape)))
        return {"features": features, "logits": logits}


def weights_path(name: str) -> Path:
    return WEIGHTS_DIR / f"{name}_cnn.msgpack"


def init_params(key, image_shape, num_classes: int):
    return CNN(num_classes).init(key, jnp.zeros((1,) + tuple(image_shape)))


def load(name: str, image_shape, num_classes: int) -> FeatureNet | None:
    """The shipped network of dataset ``name``, or None when scl ships none for it."""
    path = weights_path(name)
    if not path.exists():
        return None
    template = init_params(jax.random.PRNGKey(0), image_shape, num_classes)
    params = serialization.from_bytes(template, path.read_bytes())
    return FeatureNet(CNN(num_classes), params, tuple(image_shape))


def rows_features(net: FeatureNet):
    """Source.features for image rows {"x": [n, D], ...}."""
    return lambda rows: net.apply(rows["x"])
