"""Small flax networks shared by the neural families: MLP, time embedding, time-conditioned MLP.

All act on a batch: x [B, d] -> [B, out]; times t [B] in [0, 1].
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class MLP(nn.Module):
    """``depth`` hidden SiLU layers of ``width`` units, then a linear layer to ``out`` units.

    ``zero_last``: the output layer starts at zero (an identity coupling / zero velocity at init).
    """

    width: int
    depth: int
    out: int
    zero_last: bool = False

    @nn.compact
    def __call__(self, h):
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width)(h))
        init = nn.initializers.zeros if self.zero_last else nn.linear.default_kernel_init
        return nn.Dense(self.out, kernel_init=init)(h)


def time_embedding(t, features: int = 16):
    """Sinusoidal embedding of times t [B] in [0, 1] -> [B, features] (Transformer/DDPM style)."""
    half = features // 2
    freqs = jnp.exp(-jnp.log(10000.0) * jnp.arange(half) / half)
    args = 1000.0 * t[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], -1)


class TimeMLP(nn.Module):
    """f(x [B, d], t [B]) -> [B, out]: an MLP on [x, time_embedding(t)]."""

    width: int
    depth: int
    out: int
    time_features: int = 16

    @nn.compact
    def __call__(self, x, t):
        h = jnp.concatenate([x, time_embedding(t, self.time_features)], -1)
        return MLP(self.width, self.depth, self.out)(h)


def matmul_flops(params) -> int:
    """FLOPs of one forward pass per example through every Dense kernel in ``params``: sum 2 in out."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if getattr(path[-1], "key", None) == "kernel" and leaf.ndim >= 2:
            total += 2 * leaf.shape[-2] * leaf.shape[-1]
    return total
