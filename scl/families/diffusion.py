"""Diffusion (DDPM): noise-prediction network with a time embedding, ancestral or DDIM sampling.

Forward process over ``timesteps`` T discrete steps with a linear (Ho et al. 2020) or cosine
(Nichol & Dhariwal 2021) schedule; abar_t = prod_{s<=t} (1 - beta_s). Linear: the rates
b = linspace(1e-4, 0.02, T) * 1000 / T of Ho et al. (T = 1000) integrated exactly,
beta_t = 1 - exp(-b_t), so abar_t = exp(-sum_{s<=t} b_s) lies in (0, 1) for every T >= 2 and ends
at the same noise level abar_T = exp(-10.05) ~ 4.3e-5 whatever T (the plain beta_t = b_t gives a
negative abar for T < 20 and differs from this by at most b^2 / 2 = 2e-4 per step at T = 1000).
Training: t ~ U{0..T-1}, eps ~ N(0, I), z_t = sqrt(abar_t) z + sqrt(1 - abar_t) eps, loss
|eps - eps_theta(z_t, t/T)|^2. Sampling walks ``sample_steps`` timesteps tau_S > ... > tau_1
(evenly spaced in 0..T-1) with the DDIM update (Song et al. 2021)

    z0_hat = (z - sqrt(1 - abar) eps) / sqrt(abar)
    z' = sqrt(abar') z0_hat + sqrt(1 - abar' - sigma^2) eps + sigma xi,
    sigma = eta sqrt((1 - abar') / (1 - abar)) sqrt(1 - abar / abar')

eta = 1 ("ancestral": the DDPM posterior on the respaced chain), eta = 0 ("ddim", deterministic).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import jax
import jax.numpy as jnp
import numpy as np

from scl.errors import ConfigError
from scl.options import static
from scl.families.base import Family
from scl.families.networks import NetworkOptions, image_shape_of
from scl.families.unet import time_network
from scl.families.neural import NeuralOptions, NeuralSpec, neural_family, num_classes_of
from scl.families.sims import SimsOptions   # SIMS hook
from scl.registry import register_family


@dataclass(frozen=True)
class DiffusionModel(NeuralOptions, NetworkOptions, SimsOptions):
    """``model: {family: diffusion, schedule, timesteps, sampler, sample_steps, width, ...}``."""

    tag_key = "family"
    name = "diffusion"
    image_rows = True
    schedule: Literal["linear", "cosine"] = static("linear", "noise schedule")
    timesteps: int = static(1000, "T, training noise levels", ge=2)
    sampler: Literal["ancestral", "ddim"] = static("ancestral", "ancestral (eta = 1) or deterministic DDIM (eta = 0)")
    sample_steps: int = static(100, "denoising steps when sampling (<= timesteps)")
    clip_denoised: Optional[float] = static(
        5.0, "clip the predicted clean point z0_hat to [-c, c] in standardised units (null: off); "
             "guards the noisiest steps, where eps errors are amplified by 1 / sqrt(abar)", gt=0.0)

    def validate(self, path):
        if not 1 <= self.sample_steps <= self.timesteps:
            raise ConfigError(f"{path}.sample_steps", f"must be in [1, timesteps={self.timesteps}], got {self.sample_steps}")


def alpha_bars(schedule: str, T: int) -> np.ndarray:
    """[T] cumulative products abar_t = prod_{s<=t} (1 - beta_s), float64."""
    if schedule == "linear":
        rates = np.linspace(1e-4, 0.02, T) * (1000 / T)   # Ho et al. for T = 1000, rescaled
        betas = -np.expm1(-rates)                          # 1 - exp(-rate): in (0, 1) for every T
    else:
        s = 0.008
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
        betas = np.clip(1 - f[1:] / f[:-1], 0.0, 0.999)
    return np.cumprod(1.0 - betas)


def sampling_chain(abar: np.ndarray, steps: int):
    """Timesteps tau [S] (descending) and abar at tau and at the next (smaller) tau (1 at the end)."""
    T = abar.shape[0]
    tau = np.unique(np.round(np.linspace(0, T - 1, steps)).astype(np.int64))[::-1]
    a = abar[tau]
    a_next = np.concatenate([abar[tau[1:]], [1.0]])
    return tau, a, a_next


def denoising_chain(schedule: str, T: int, steps: int, sampler: str) -> tuple:
    """Per-step arrays [S] of the sampler: (t/T, sqrt abar, sqrt(1-abar), sqrt abar',
    sqrt(1 - abar' - sigma^2), sigma), from the noisiest step to the last."""
    tau, a, a_next = sampling_chain(alpha_bars(schedule, T), steps)
    eta = 1.0 if sampler == "ancestral" else 0.0
    sigma = eta * np.sqrt((1 - a_next) / (1 - a)) * np.sqrt(1 - a / a_next)
    return tuple(jnp.asarray(v, jnp.float32) for v in
                 (tau / T, np.sqrt(a), np.sqrt(1 - a), np.sqrt(a_next),
                  np.sqrt(np.clip(1 - a_next - sigma ** 2, 0.0, None)), sigma))


def denoise(eps_fn, key, n: int, dim: int, chain: tuple, clip: float | None = None, temperature=1.0):
    """Draw z [n, dim] by running the chain from N(0, I) with noise predictor eps_fn(z, t/T [n]);
    ``clip``: clip z0_hat to [-clip, clip] (eps is then recomputed from it, as DDIM does);
    ``temperature`` multiplies the initial noise and every injected noise term sigma xi."""
    k0, kn = jax.random.split(key)

    def step(z, inputs):
        t, ra, r1a, ra_next, r1a_next, sig, k = inputs
        eps = eps_fn(z, jnp.full((n,), t))
        z0 = (z - r1a * eps) / ra
        if clip is not None:
            z0 = jnp.clip(z0, -clip, clip)
            eps = (z - ra * z0) / r1a
        return ra_next * z0 + r1a_next * eps + sig * (temperature * jax.random.normal(k, z.shape)), None

    keys = jax.random.split(kn, chain[0].shape[0])
    return jax.lax.scan(step, temperature * jax.random.normal(k0, (n, dim)), chain + (keys,))[0]


def diffusion_spec(o: DiffusionModel, dim: int, num_classes: int = 0, image_shape=None) -> NeuralSpec:
    """``num_classes`` K > 0: class-conditional (image rows; labels in {0..K}, K = null);
    ``image_shape`` (H, W, C): the U-Net's (model.network: unet)."""
    net = time_network(o, dim, num_classes, image_shape)
    T = o.timesteps
    abar = jnp.asarray(alpha_bars(o.schedule, T), jnp.float32)
    chain = denoising_chain(o.schedule, T, o.sample_steps, o.sampler)

    def init(key):
        return net.init(key, jnp.zeros((1, dim)), jnp.zeros((1,)), jnp.zeros((1,), jnp.int32))

    def loss(params, key, z, y=None):
        kt, ke = jax.random.split(key)
        t = jax.random.randint(kt, (z.shape[0],), 0, T)
        eps = jax.random.normal(ke, z.shape)
        ab = abar[t][:, None]
        zt = jnp.sqrt(ab) * z + jnp.sqrt(1 - ab) * eps
        return jnp.mean(jnp.sum((net.apply(params, zt, t / T, y) - eps) ** 2, -1))

    def predict(params, z, t, y=None):
        return net.apply(params, z, t, y)

    def sample_with(eps_fn, key, n, temperature=1.0):
        return denoise(eps_fn, key, n, dim, chain, o.clip_denoised, temperature)

    def sample(params, key, n):
        return sample_with(lambda z, t: predict(params, z, t), key, n)

    return NeuralSpec(init, loss, sample, predict=predict, sample_with=sample_with, num_classes=num_classes)


@register_family("diffusion", DiffusionModel)
def make_diffusion(o: DiffusionModel, source) -> Family:
    """DDPM noise-prediction diffusion with ancestral or DDIM sampling (class-conditional on image rows)."""
    return neural_family(diffusion_spec(o, source.dim, num_classes_of(source), image_shape_of(source)), o, labels=source.assign)   # SIMS hook: labels
