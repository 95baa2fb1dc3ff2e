"""Small flax networks shared by the neural families: MLP, time embedding, time-conditioned MLP.

All act on a batch: x [B, d] -> [B, out]; times t [B] in [0, 1].

Matmul precision (``model.matmul_precision``, :func:`matmul_dtype`): ``fp32`` (default) builds the
networks exactly as before (``dtype=None``: float32 throughout). ``bf16`` gives every Dense layer
``dtype=bfloat16``: its input and a bfloat16 copy of its float32 kernel enter a bfloat16
``dot_general`` (what GPU tensor cores and TPU MXUs run at their bf16 rate), hidden activations stay
bfloat16 (GEMMs accumulate in float32 inside), and the network's bfloat16 output is cast to float32,
so losses and samplers see float32 (and the backward pass is bf16 too: the cotangent is cast back
to bfloat16 there). Parameters, gradients (after the cast back) and Adam state stay float32. Explicit
operand dtypes were chosen over ``jax.default_matmul_precision``: that flag is a request on float32
operands; its level "bfloat16" is ``Precision.DEFAULT``, which GPUs run as TF32 (and TPUs already
run float32 matmuls as one bf16 pass by default); a dot-algorithm preset (BF16_BF16_F32) would
force bf16 passes, but not on every backend and JAX version, and either way activations stay
float32 in memory. A bf16 operand is unambiguous on every backend, halves activation traffic, and
is visible in the jaxpr (tests/test_bf16.py checks it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.options import static

MATMUL_DTYPES = {"fp32": None, "bf16": jnp.bfloat16}


def matmul_dtype(precision: str):
    """The flax ``dtype`` of ``model.matmul_precision``: None (fp32, as before) or jnp.bfloat16."""
    return MATMUL_DTYPES[precision]


class MLP(nn.Module):
    """``depth`` hidden SiLU layers of ``width`` units, then a linear layer to ``out`` units.

    ``zero_last``: the output layer starts at zero (an identity coupling / zero velocity at init).
    ``dtype``: None (float32) or jnp.bfloat16 (bf16 matmuls, float32 params and output).
    """

    width: int
    depth: int
    out: int
    zero_last: bool = False
    dtype: Any = None

    @nn.compact
    def __call__(self, h):
        for _ in range(self.depth):
            h = nn.silu(nn.Dense(self.width, dtype=self.dtype)(h))
        init = nn.initializers.zeros if self.zero_last else nn.linear.default_kernel_init
        if self.dtype is None:
            return nn.Dense(self.out, kernel_init=init)(h)
        return nn.Dense(self.out, kernel_init=init, dtype=self.dtype)(h).astype(jnp.float32)


def time_embedding(t, features: int = 16):
    """Sinusoidal embedding of times t [B] in [0, 1] -> [B, features] (Transformer/DDPM style)."""
    half = features // 2
    freqs = jnp.exp(-jnp.log(10000.0) * jnp.arange(half) / half)
    args = 1000.0 * t[:, None] * freqs[None]
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], -1)


class TimeMLP(nn.Module):
    """f(x [B, d], t [B], y [B] = None) -> [B, out]: an MLP on [x, time_embedding(t)], plus with
    ``num_classes`` K > 0 a learned embedding of the class label y in {0..K} (K: the null label
    of classifier-free guidance)."""

    width: int
    depth: int
    out: int
    time_features: int = 16
    dtype: Any = None
    num_classes: int = 0
    class_features: int = 16

    @nn.compact
    def __call__(self, x, t, y=None):
        parts = [x, time_embedding(t, self.time_features)]
        if self.num_classes:
            parts.append(nn.Embed(self.num_classes + 1, self.class_features)(y))
        return MLP(self.width, self.depth, self.out, dtype=self.dtype)(jnp.concatenate(parts, -1))


@dataclass(frozen=True)
class NetworkOptions:
    """Mixin of the denoising families' network choice (``model.network``, ``model.channels``)."""

    network: Literal["mlp", "unet"] = static(
        "mlp", "the network: mlp (TimeMLP on flattened rows) or unet (a convolutional U-Net, "
               "image rows only; scl.families.unet)")
    channels: Tuple[int, ...] = static(
        (32, 64), "unet: widths of its resolution levels (one level per entry; each after the "
                  "first halves H and W, rounding up)", ge=1)

    def check_network(self, image: bool):
        """ConfigErrors of the network fields; ``image``: the truth has image rows."""
        if self.network == "unet" and not image:
            raise ConfigError("model.network", "unet needs image rows (an image truth such as "
                              "truth.kind: digits); use mlp for vector rows")
        if not self.channels:
            raise ConfigError("model.channels", "needs at least one width")


def image_shape_of(source):
    """(H, W, C) of an image source, None for vector rows."""
    shape = (source.params or {}).get("image_shape")
    return None if shape is None else tuple(int(s) for s in shape)


def matmul_flops(params) -> int:
    """FLOPs of one forward pass per example through every Dense kernel in ``params``: sum 2 in out."""
    total = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
        if getattr(path[-1], "key", None) == "kernel" and leaf.ndim >= 2:
            total += 2 * leaf.shape[-2] * leaf.shape[-1]
    return total
