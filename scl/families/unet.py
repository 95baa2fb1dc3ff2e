"""A small convolutional U-Net for image rows, with TimeMLP's call signature.

``UNet(...).apply(params, z [n, D], t [n], y [n] | None) -> [n, D]``: z is reshaped to
[n, H, W, C] (``image_shape``, row-major as the image sources flatten it), run through one
resolution level per entry of ``channels`` (each level: a residual block; between levels a
stride-2 'SAME' convolution, so H -> ceil(H / 2): 8 -> 4, 28 -> 14 -> 7, and odd sizes work), a
middle residual block, then the levels back up (nearest-neighbour resize to the skip's exact
size, concatenation with the skip, a residual block), and flattened back to [n, D].

Residual block (Ho et al. 2020): GroupNorm, SiLU, 3x3 conv, plus a Dense projection of the
embedding added per channel, GroupNorm, SiLU, 3x3 conv, plus the input (1x1 conv when the widths
differ). The embedding: the sinusoidal time embedding (scl.families.networks.time_embedding)
through a two-layer SiLU MLP, plus with ``num_classes`` K > 0 a learned class embedding of
K + 1 rows (row K: the null label of classifier-free guidance).

``dtype``: None (float32) or jnp.bfloat16 (model.matmul_precision bf16: convolutions, Dense
layers and GroupNorm run in bfloat16 on float32 parameters; the output is cast to float32).
"""
from __future__ import annotations

import math
from typing import Any, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from scl.families.networks import TimeMLP, matmul_dtype, time_embedding


def conv_kernel_init(key, shape, dtype=jnp.float32):
    """flax's default conv kernel init (LeCun normal, fan_in = kh kw c_in) drawn as a
    [kh kw c_in, c_out] matrix and reshaped: the same law, but XLA:CPU compiles a 4-D random
    draw in ~5 s (measured, jax 0.10.2) against ~0.5 s for the 2-D one."""
    flat = (math.prod(shape[:-1]), shape[-1])
    return nn.initializers.lecun_normal()(key, flat, dtype).reshape(shape)


def conv(features: int, size: int = 3, stride: int = 1, dtype=None) -> nn.Conv:
    """A size x size 'SAME' convolution (stride 2: H -> ceil(H / 2)) with :func:`conv_kernel_init`."""
    return nn.Conv(features, (size, size), (stride, stride), padding="SAME", dtype=dtype,
                   kernel_init=conv_kernel_init)


def groups(channels: int, most: int = 8) -> int:
    """GroupNorm groups for a width: the largest divisor of ``channels`` up to ``most`` that
    leaves at least 4 channels a group (8 for 32 or 64; 1 for 4). With one channel a group the
    norm would erase the embedding, which each block adds as a per-channel constant."""
    return max(g for g in range(1, most + 1) if channels % g == 0 and (g == 1 or channels // g >= 4))


class ResBlock(nn.Module):
    """h [n, H, W, c_in], emb [n, E] -> [n, H, W, channels]."""

    channels: int
    dtype: Any = None

    @nn.compact
    def __call__(self, h, emb):
        norm = lambda c: nn.GroupNorm(num_groups=groups(c), dtype=self.dtype)
        out = conv(self.channels, dtype=self.dtype)(nn.silu(norm(h.shape[-1])(h)))
        out = out + nn.Dense(self.channels, dtype=self.dtype)(nn.silu(emb))[:, None, None, :]
        out = conv(self.channels, dtype=self.dtype)(nn.silu(norm(self.channels)(out)))
        if h.shape[-1] != self.channels:
            h = conv(self.channels, 1, dtype=self.dtype)(h)
        return h + out


class UNet(nn.Module):
    """f(z [n, D], t [n] in [0, 1], y [n] in {0..K} | None) -> [n, D], D = H W C."""

    image_shape: Tuple[int, int, int]
    channels: Tuple[int, ...] = (32, 64)
    num_classes: int = 0
    time_features: int = 32
    dtype: Any = None

    @nn.compact
    def __call__(self, z, t, y=None):
        H, W, C = self.image_shape
        n = z.shape[0]
        width = 4 * self.channels[0]
        emb = nn.Dense(width, dtype=self.dtype)(time_embedding(t, self.time_features))
        emb = nn.Dense(width, dtype=self.dtype)(nn.silu(emb))
        if self.num_classes:
            emb = emb + nn.Embed(self.num_classes + 1, width, dtype=self.dtype)(y)

        h = conv(self.channels[0], dtype=self.dtype)(z.reshape(n, H, W, C))
        skips = []
        for level, ch in enumerate(self.channels):
            if level:
                h = conv(ch, stride=2, dtype=self.dtype)(h)
            h = ResBlock(ch, self.dtype)(h, emb)
            skips.append(h)
        h = ResBlock(self.channels[-1], self.dtype)(h, emb)
        for level in reversed(range(len(self.channels))):
            skip = skips[level]
            if h.shape[1:3] != skip.shape[1:3]:
                h = jax.image.resize(h, (n,) + skip.shape[1:3] + (h.shape[-1],), "nearest")
            h = ResBlock(self.channels[level], self.dtype)(jnp.concatenate([h, skip], -1), emb)
        h = nn.silu(nn.GroupNorm(num_groups=groups(h.shape[-1]), dtype=self.dtype)(h))
        out = conv(C, dtype=self.dtype)(h)
        return out.reshape(n, H * W * C).astype(jnp.float32)


def time_network(o, dim: int, num_classes: int = 0, image_shape=None) -> nn.Module:
    """The network f(z [B, dim], t [B], y [B] | None) -> [B, dim] of options ``o`` (a
    NeuralOptions with NetworkOptions): TimeMLP, or the U-Net on images of ``image_shape``."""
    dtype = matmul_dtype(o.matmul_precision)
    if getattr(o, "network", "mlp") == "unet":
        return UNet(tuple(image_shape), tuple(o.channels), num_classes, dtype=dtype)
    return TimeMLP(o.width, o.depth, dim, dtype=dtype, num_classes=num_classes)
