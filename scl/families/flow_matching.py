"""Flow matching: linear-interpolant conditional flow matching, Euler or Heun sampler.

Training: z0 ~ N(0, I), z1 = data, t ~ U(0, 1), z_t = (1 - t) z0 + t z1; the velocity network
v(z_t, t) regresses z1 - z0 (squared error). Sampling integrates dz/dt = v(z, t) from t = 0
(noise) to t = 1 (data) in ``sample_steps`` equal steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp

from scl.options import static
from scl.families.base import Family
from scl.families.networks import NetworkOptions, image_shape_of
from scl.families.unet import time_network
from scl.families.neural import NeuralOptions, NeuralSpec, neural_family, num_classes_of
from scl.families.sims import SimsOptions   # SIMS hook
from scl.registry import register_family


@dataclass(frozen=True)
class FlowMatchingModel(NeuralOptions, NetworkOptions, SimsOptions):
    """``model: {family: flow_matching, sampler, sample_steps, width, depth, steps, ...}``."""

    tag_key = "family"
    name = "flow_matching"
    image_rows = True
    sampler: Literal["euler", "heun"] = static("euler", "ODE integrator for sampling")
    sample_steps: int = static(50, "integration steps from noise to data", ge=1)


def integrate(velocity, z, steps: int, method: str):
    """Integrate dz/dt = velocity(z [n, d], t [n]) from t = 0 to 1 with Euler or Heun steps."""
    h = 1.0 / steps

    def step(z, i):
        t = jnp.full((z.shape[0],), i * h)
        v = velocity(z, t)
        if method == "heun":
            v_next = velocity(z + h * v, t + h)
            v = 0.5 * (v + v_next)
        return z + h * v, None

    return jax.lax.scan(step, z, jnp.arange(steps, dtype=jnp.float32))[0]


def flow_matching_spec(o: FlowMatchingModel, dim: int, num_classes: int = 0, image_shape=None) -> NeuralSpec:
    """``num_classes`` K > 0: class-conditional (image rows; labels in {0..K}, K = null);
    ``image_shape`` (H, W, C): the U-Net's (model.network: unet)."""
    net = time_network(o, dim, num_classes, image_shape)

    def init(key):
        return net.init(key, jnp.zeros((1, dim)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))

    def loss(params, key, z1, y=None):
        k0, kt = jax.random.split(key)
        z0 = jax.random.normal(k0, z1.shape)
        t = jax.random.uniform(kt, (z1.shape[0],))
        zt = (1 - t[:, None]) * z0 + t[:, None] * z1
        return jnp.mean(jnp.sum((net.apply(params, zt, t, y) - (z1 - z0)) ** 2, -1))

    def predict(params, z, t, y=None):
        return net.apply(params, z, t, y)

    def sample_with(velocity_fn, key, n, temperature=1.0):
        z0 = temperature * jax.random.normal(key, (n, dim))   # temperature: scales the initial noise
        return integrate(velocity_fn, z0, o.sample_steps, o.sampler)

    def sample(params, key, n):
        return sample_with(lambda z, t: predict(params, z, t), key, n)

    return NeuralSpec(init, loss, sample, predict=predict, sample_with=sample_with, num_classes=num_classes)


@register_family("flow_matching", FlowMatchingModel)
def make_flow_matching(o: FlowMatchingModel, source) -> Family:
    """Conditional flow matching (linear interpolant) with an Euler or Heun sampler."""
    return neural_family(flow_matching_spec(o, source.dim, num_classes_of(source), image_shape_of(source)), o, labels=source.assign)   # SIMS hook: labels
