"""Train the feature network that ships with scl for an embedded image dataset, deterministically.

    python scripts/train_feature_net.py --dataset digits     # -> scl/data/weights/digits_cnn.msgpack

Adam on the train split only (fixed seed, fixed minibatch order, random 1-pixel shifts as
augmentation), then prints the held-out accuracy. The weights file is what scl.features loads.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from scl import features
from scl.data import images

LOADERS = {"digits": images.load_digits}


def shift(key, batch, image_shape):
    """Each image [B, H, W, C] moved by a random offset in {-1, 0, 1}^2 (zero-padded with -1)."""
    H, W, _ = image_shape
    padded = jnp.pad(batch, ((0, 0), (1, 1), (1, 1), (0, 0)), constant_values=-1.0)
    offsets = jax.random.randint(key, (batch.shape[0], 2), 0, 3)
    return jax.vmap(lambda im, o: jax.lax.dynamic_slice(im, (o[0], o[1], 0), (H, W, im.shape[-1])))(padded, offsets)


def train(arrays, epochs: int = 60, batch: int = 64, lr: float = 2e-3, seed: int = 0):
    shape, K = arrays.image_shape, arrays.num_classes
    x = jnp.asarray(arrays.train_x).reshape((-1,) + shape)
    y = jnp.asarray(arrays.train_y)
    net = features.CNN(K)
    params = features.init_params(jax.random.PRNGKey(seed), shape, K)
    steps_per_epoch = len(x) // batch
    opt = optax.adam(optax.cosine_decay_schedule(lr, epochs * steps_per_epoch))
    state = opt.init(params)

    def loss(p, xb, yb):
        return optax.softmax_cross_entropy_with_integer_labels(net.apply(p, xb)[1], yb).mean()

    @jax.jit
    def epoch(carry, key):
        def step(carry, idx_key):
            p, s = carry
            idx, k = idx_key
            g = jax.grad(loss)(p, shift(k, x[idx], shape), y[idx])
            u, s = opt.update(g, s, p)
            return (optax.apply_updates(p, u), s), None
        kp, ks = jax.random.split(key)
        order = jax.random.permutation(kp, len(x))[: steps_per_epoch * batch].reshape(steps_per_epoch, batch)
        return jax.lax.scan(step, carry, (order, jax.random.split(ks, steps_per_epoch)))[0]

    carry = (params, state)
    for key in jax.random.split(jax.random.PRNGKey(seed + 1), epochs):
        carry = epoch(carry, key)
    return carry[0]


def accuracy(net, x, y) -> float:
    return float(np.mean(np.argmax(np.asarray(net.apply(jnp.asarray(x))["logits"]), 1) == np.asarray(y)))


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", choices=sorted(LOADERS), default="digits")
    ap.add_argument("--epochs", type=int, default=60)
    args = ap.parse_args()
    arrays = LOADERS[args.dataset]()
    t0 = time.time()
    params = train(arrays, args.epochs)
    net = features.FeatureNet(features.CNN(arrays.num_classes), params, arrays.image_shape)
    path = features.weights_path(args.dataset)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(serialization.to_bytes(params))
    print(f"{args.dataset}: trained in {time.time() - t0:.1f} s; train accuracy "
          f"{accuracy(net, arrays.train_x, arrays.train_y):.4f}, held-out accuracy "
          f"{accuracy(net, arrays.heldout_x, arrays.heldout_y):.4f} ({len(arrays.heldout_y)} images); "
          f"wrote {path} ({path.stat().st_size} bytes)")
