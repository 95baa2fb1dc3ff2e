"""Normalizing flows from coupling layers: exact log-density and sampling.

Direction: f maps data z [B, d] to latent u = f(z) ~ N(0, I); log p(z) = log N(f(z)) + log|det f'|.
Coupling layer k keeps the coordinates with mask_k = 1 (masks alternate between even and odd
coordinates); an MLP reads the kept coordinates z * mask_k [B, d] and parameterises an elementwise
monotone map of the others. Last layers start at zero, so every flow starts as the identity.

``coupling: affine`` (RealNVP, :class:`RealNVP`): the MLP outputs [B, 2d] = (raw_s, t) and
    z_j -> z_j * exp(s_j) + t_j,    s = s_scale * tanh(raw_s),    log|det| = sum_j s_j.

``coupling: spline`` (Durkan et al. 2019, "Neural Spline Flows", :class:`SplineFlow`): the MLP
outputs [B, d, 3K - 1] = K width logits, K height logits and K - 1 interior-derivative
pre-activations per coordinate (K = ``bins``), defining a monotone rational-quadratic spline g on
[-bound, bound] with knots (x_k, y_k), k = 0..K (x_0 = y_0 = -bound, x_K = y_K = bound):
    widths  w_k = 2 bound (m + (1 - m K) softmax(width logits)_k),   heights h_k likewise (m = 1e-3),
    slopes  delta_k = h_k / w_k,    knot derivatives d_k = 1e-3 + softplus(raw + c) (d = 1 at raw 0),
            d_0 = d_K = 1 so the identity tails join the spline continuously (value and slope).
For x in bin k, xi = (x - x_k) / w_k in [0, 1]:
    g(x)  = y_k + h_k (delta_k xi^2 + d_k xi (1 - xi)) / (delta_k + (d_{k+1} + d_k - 2 delta_k) xi (1 - xi))
    g'(x) = delta_k^2 (d_{k+1} xi^2 + 2 delta_k xi (1 - xi) + d_k (1 - xi)^2)
            / (delta_k + (d_{k+1} + d_k - 2 delta_k) xi (1 - xi))^2,
and g(x) = x (log g' = 0) outside [-bound, bound]. The inverse solves the quadratic
a xi^2 + b xi + c = 0 (a = h_k (delta_k - d_k) + (y - y_k) S, b = h_k d_k - (y - y_k) S,
c = -delta_k (y - y_k), S = d_{k+1} + d_k - 2 delta_k) by the stable root xi = 2c / (-b - sqrt(b^2 - 4ac)).
Uniform bins and unit derivatives (the zero-initialised network) make g the identity.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import static
from scl.families.base import Family
from scl.families.networks import MLP, matmul_dtype
from scl.families.neural import NeuralOptions, NeuralSpec, neural_family, truth_dim
from scl.registry import register_family


@dataclass(frozen=True)
class FlowModel(NeuralOptions):
    """``model: {family: flow, layers, coupling, bins, bound, width, depth, steps, ...}``."""

    tag_key = "family"
    name = "flow"
    layers: int = static(8, "coupling layers", ge=1)
    coupling: Literal["affine", "spline"] = static(
        "affine", "affine (RealNVP) or spline (rational-quadratic, Durkan et al. 2019) coupling layers")
    bins: int = static(8, "spline bins K per coordinate (coupling: spline)", ge=2)
    bound: float = static(4.0, "the spline acts on [-bound, bound] in standardised units, identity "
                               "outside (coupling: spline)", gt=0.0, finite=True)

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
    dtype: Any = None          # None: float32; jnp.bfloat16: bf16 matmuls (networks.MLP)

    def setup(self):
        self.nets = [MLP(self.width, self.depth, 2 * self.dim, zero_last=True, dtype=self.dtype)
                     for _ in range(self.layers)]
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


MIN_BIN = 1e-3          # smallest bin width / height, as a fraction of 2 bound
MIN_DERIVATIVE = 1e-3   # smallest knot derivative
_DERIVATIVE_SHIFT = math.log(math.expm1(1.0 - MIN_DERIVATIVE))   # softplus(0 + shift) + min = 1


def _spline_knots(logits, bound):
    """Knot positions [..., K + 1] from -bound to bound and bin sizes [..., K] of K logits."""
    k = logits.shape[-1]
    frac = MIN_BIN + (1.0 - MIN_BIN * k) * jax.nn.softmax(logits, -1)
    cum = jnp.cumsum(frac, -1)
    cum = jnp.concatenate([jnp.zeros_like(cum[..., :1]), cum], -1)
    knots = 2.0 * bound * cum - bound
    knots = knots.at[..., 0].set(-bound).at[..., -1].set(bound)
    return knots, knots[..., 1:] - knots[..., :-1]


def rational_quadratic_spline(x, raw, bound: float, inverse: bool = False):
    """Elementwise monotone rational-quadratic spline on [-bound, bound], identity outside.

    x [...]; raw [..., 3K - 1] = K width logits, K height logits, K - 1 interior derivative
    pre-activations (see the module docstring). Returns (g(x), log g'(x)), both [...]; with
    ``inverse``: (g^-1(x), log |d g^-1 / dx|) = (g^-1(x), -log g'(g^-1(x))).
    """
    k = (raw.shape[-1] + 1) // 3
    xs, w = _spline_knots(raw[..., :k], bound)
    ys, h = _spline_knots(raw[..., k:2 * k], bound)
    inner = MIN_DERIVATIVE + jax.nn.softplus(raw[..., 2 * k:] + _DERIVATIVE_SHIFT)
    ones = jnp.ones_like(inner[..., :1])
    d = jnp.concatenate([ones, inner, ones], -1)                     # [..., K + 1], d_0 = d_K = 1
    inside = (x >= -bound) & (x <= bound)
    xc = jnp.clip(x, -bound, bound)
    # bin of xc: one-hot [..., K] of the number of interior knots at or below it (0..K-1); a
    # masked sum rather than a gather (K is small; cheaper to compile and differentiate)
    idx = jnp.sum(xc[..., None] >= (ys if inverse else xs)[..., 1:-1], -1)
    onehot = idx[..., None] == jnp.arange(k)

    def take(a):
        return jnp.sum(jnp.where(onehot, a, 0.0), -1)

    x0, w0, y0, h0 = take(xs[..., :-1]), take(w), take(ys[..., :-1]), take(h)
    d0, d1 = take(d[..., :-1]), take(d[..., 1:])
    delta = h0 / w0
    s = d1 + d0 - 2.0 * delta
    if inverse:
        dy = xc - y0
        a = h0 * (delta - d0) + dy * s
        b = h0 * d0 - dy * s
        c = -delta * dy
        disc = jnp.maximum(b * b - 4.0 * a * c, 0.0)
        xi = jnp.clip(2.0 * c / (-b - jnp.sqrt(disc)), 0.0, 1.0)
        out = x0 + xi * w0
    else:
        xi = (xc - x0) / w0
    t = xi * (1.0 - xi)
    den = delta + s * t
    log_slope = (2.0 * jnp.log(delta) + jnp.log(d1 * xi ** 2 + 2.0 * delta * t + d0 * (1.0 - xi) ** 2)
                 - 2.0 * jnp.log(den))
    if inverse:
        return jnp.where(inside, out, x), jnp.where(inside, -log_slope, 0.0)
    out = y0 + h0 * (delta * xi ** 2 + d0 * t) / den
    return jnp.where(inside, out, x), jnp.where(inside, log_slope, 0.0)


class SplineFlow(nn.Module):
    """Rational-quadratic spline coupling flow (Durkan et al. 2019), RealNVP's masking scheme."""

    dim: int
    layers: int
    width: int
    depth: int
    bins: int
    bound: float
    dtype: Any = None          # None: float32; jnp.bfloat16: bf16 matmuls (networks.MLP)

    def setup(self):
        n_raw = 3 * self.bins - 1
        self.nets = [MLP(self.width, self.depth, self.dim * n_raw, zero_last=True, dtype=self.dtype)
                     for _ in range(self.layers)]
        self.masks = jnp.asarray(coupling_masks(self.dim, self.layers))

    def _couple(self, k, z, inverse):
        m = self.masks[k]
        raw = self.nets[k](z * m).reshape(z.shape[:-1] + (self.dim, 3 * self.bins - 1))
        y, log_slope = rational_quadratic_spline(z, raw, self.bound, inverse)
        return z * m + (1 - m) * y, jnp.sum((1 - m) * log_slope, -1)

    def forward(self, z):
        """Data z [B, d] -> latent u [B, d] and log|det df/dz| [B]."""
        logdet = jnp.zeros(z.shape[0])
        for k in range(self.layers):
            z, ld = self._couple(k, z, False)
            logdet = logdet + ld
        return z, logdet

    def inverse(self, u):
        """Latent u [B, d] -> data z [B, d]."""
        for k in reversed(range(self.layers)):
            u, _ = self._couple(k, u, True)
        return u

    def log_prob(self, z):
        u, logdet = self.forward(z)
        base = -0.5 * jnp.sum(u ** 2, -1) - 0.5 * self.dim * jnp.log(2 * jnp.pi)
        return base + logdet


def flow_network(o: FlowModel, dim: int) -> nn.Module:
    """The flax module of ``model: {family: flow}``: RealNVP or SplineFlow per ``coupling``."""
    dtype = matmul_dtype(o.matmul_precision)
    if o.coupling == "spline":
        return SplineFlow(dim, o.layers, o.width, o.depth, o.bins, float(o.bound), dtype)
    return RealNVP(dim, o.layers, o.width, o.depth, dtype)


def flow_spec(o: FlowModel, dim: int) -> NeuralSpec:
    net = flow_network(o, dim)
    cls = type(net)

    def init(key):
        return net.init(key, jnp.zeros((1, dim)), method=cls.log_prob)

    def loss(params, key, z):
        return -jnp.mean(net.apply(params, z, method=cls.log_prob))

    def sample(params, key, n):
        return net.apply(params, jax.random.normal(key, (n, dim)), method=cls.inverse)

    def log_prob(params, z):
        return net.apply(params, z, method=cls.log_prob)

    return NeuralSpec(init, loss, sample, log_prob)


@register_family("flow", FlowModel)
def make_flow(o: FlowModel, source) -> Family:
    """Coupling normalizing flow (RealNVP affine or rational-quadratic spline) trained by maximum
    likelihood (exact log_prob)."""
    return neural_family(flow_spec(o, source.dim), o)
