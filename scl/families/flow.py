"""Normalizing flow: RealNVP affine coupling layers, exact log-density and sampling.

Direction: f maps data z [B, d] to latent u = f(z) ~ N(0, I); log p(z) = log N(f(z)) + log|det f'|.
Coupling layer k keeps the coordinates with mask_k = 1 and maps the others as
    z_j -> z_j * exp(s_j(z_kept)) + t_j(z_kept),    s = s_scale * tanh(raw_s)
with masks alternating between even and odd coordinates. Networks start at zero (identity flow).
"""
from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from scl.config import ConfigError, static
from scl.families.base import Family
from scl.families.networks import MLP
from scl.families.neural import NeuralOptions, NeuralSpec, neural_family, truth_dim
from scl.registry import register_family


@dataclass(frozen=True)
class FlowModel(NeuralOptions):
    """``model: {family: flow, layers, width, depth, steps, ...}`` (RealNVP)."""

    tag_key = "family"
    name = "flow"
    layers: int = static(8, "affine coupling layers")

    def validate(self, path):
        super().validate(path)
        if self.layers < 1:
            raise ConfigError(f"{path}.layers", f"must be >= 1, got {self.layers}")

    def check(self, cfg):
        super().check(cfg)
        if truth_dim(cfg) < 2:
            raise ConfigError("model.family", "flow (coupling layers) needs a truth of dimension >= 2")


def coupling_masks(dim: int, layers: int) -> np.ndarray:
    """[layers, dim] 0/1 masks: layer k keeps coordinates j with j % 2 == k % 2."""
    j = np.arange(dim)
    return np.stack([(j % 2 == k % 2) for k in range(layers)]).astype(np.float32)


class RealNVP(nn.Module):
    dim: int
    layers: int
    width: int
    depth: int

    def setup(self):
        self.nets = [MLP(self.width, self.depth, 2 * self.dim, zero_last=True) for _ in range(self.layers)]
        self.s_scale = self.param("s_scale", nn.initializers.ones, (self.layers, self.dim))
        self.masks = jnp.asarray(coupling_masks(self.dim, self.layers))

    def _shift_log_scale(self, k, kept):
        raw = self.nets[k](kept)
        s = self.s_scale[k] * jnp.tanh(raw[:, : self.dim])
        return s, raw[:, self.dim:]

    def forward(self, z):
        """Data z [B, d] -> latent u [B, d] and log|det df/dz| [B]."""
        logdet = jnp.zeros(z.shape[0])
        for k in range(self.layers):
            m = self.masks[k]
            s, t = self._shift_log_scale(k, z * m)
            s, t = s * (1 - m), t * (1 - m)
            z = z * m + (1 - m) * (z * jnp.exp(s) + t)
            logdet = logdet + jnp.sum(s, -1)
        return z, logdet

    def inverse(self, u):
        """Latent u [B, d] -> data z [B, d]."""
        for k in reversed(range(self.layers)):
            m = self.masks[k]
            s, t = self._shift_log_scale(k, u * m)
            s, t = s * (1 - m), t * (1 - m)
            u = u * m + (1 - m) * (u - t) * jnp.exp(-s)
        return u

    def log_prob(self, z):
        u, logdet = self.forward(z)
        base = -0.5 * jnp.sum(u ** 2, -1) - 0.5 * self.dim * jnp.log(2 * jnp.pi)
        return base + logdet


def flow_spec(o: FlowModel, dim: int) -> NeuralSpec:
    net = RealNVP(dim, o.layers, o.width, o.depth)

    def init(key):
        return net.init(key, jnp.zeros((1, dim)), method=RealNVP.log_prob)

    def loss(params, key, z):
        return -jnp.mean(net.apply(params, z, method=RealNVP.log_prob))

    def sample(params, key, n):
        return net.apply(params, jax.random.normal(key, (n, dim)), method=RealNVP.inverse)

    def log_prob(params, z):
        return net.apply(params, z, method=RealNVP.log_prob)

    return NeuralSpec(init, loss, sample, log_prob)


@register_family("flow", FlowModel)
def make_flow(o: FlowModel, source) -> Family:
    """RealNVP normalizing flow trained by maximum likelihood (exact log_prob)."""
    return neural_family(flow_spec(o, source.dim), o)
