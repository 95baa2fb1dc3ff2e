"""2-D toy truths: ring of 8 Gaussians, two moons, circles, checkerboard, swiss roll.

Each sampler is pure: ``sample(key, n) -> [n, 2]`` float32.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np

from scl.options import static
from scl.data.source import Source
from scl.registry import register_source


# ---------------------------------------------------------------- ring of 8 Gaussians

@dataclass(frozen=True)
class EightGaussians:
    tag_key = "kind"
    name = "eight_gaussians"
    dim = 2
    radius: float = static(2.0, "radius of the ring of centres", gt=0.0, finite=True)
    std: float = static(0.1, "standard deviation of each mode", gt=0.0, finite=True)
    modes: int = static(8, "number of modes on the ring", ge=1)


def ring_centres(modes: int, radius: float) -> np.ndarray:
    """[modes, 2] centres at angles 2 pi k / modes."""
    a = 2 * np.pi * np.arange(modes) / modes
    return (radius * np.stack([np.cos(a), np.sin(a)], -1)).astype(np.float32)


def _nearest(centres):
    def assign(x):
        d = jnp.sum((x[:, None, :] - centres[None]) ** 2, -1)
        return jnp.argmin(d, -1)
    return assign


@register_source("eight_gaussians", EightGaussians)
def make_eight_gaussians(o: EightGaussians) -> Source:
    """Ring of equally weighted isotropic Gaussians."""
    centres = jnp.asarray(ring_centres(o.modes, o.radius))

    def sample(key, n):
        kc, kz = jax.random.split(key)
        idx = jax.random.randint(kc, (n,), 0, o.modes)
        return centres[idx] + o.std * jax.random.normal(kz, (n, 2))

    def log_prob(x):
        d2 = jnp.sum((x[:, None, :] - centres[None]) ** 2, -1)
        comp = -0.5 * d2 / o.std ** 2 - jnp.log(2 * jnp.pi * o.std ** 2)
        return jax.scipy.special.logsumexp(comp, -1) - jnp.log(o.modes)

    return Source(sample=sample, dim=2, assign=_nearest(centres), num_modes=o.modes, log_prob=log_prob)


# ---------------------------------------------------------------- two moons

@dataclass(frozen=True)
class Moons:
    tag_key = "kind"
    name = "moons"
    dim = 2
    noise: float = static(0.1, "Gaussian noise added to each coordinate", ge=0.0, finite=True)
    layout: Literal["random", "sklearn"] = static(
        "random", "random: each row picks a moon and a uniform angle; sklearn: scikit-learn's "
        "make_moons(n, shuffle=False) layout: n // 2 upper then n - n // 2 lower rows at evenly "
        "spaced angles (only the noise is random)")


def _moon_arcs(theta):
    upper = jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
    lower = jnp.stack([1 - jnp.cos(theta), 0.5 - jnp.sin(theta)], -1)
    return upper, lower


@register_source("moons", Moons)
def make_moons(o: Moons) -> Source:
    """Two interleaving half circles (as scikit-learn's make_moons); mode 0 upper, 1 lower.

    ``layout: sklearn`` reproduces ``sklearn.datasets.make_moons(n, shuffle=False)`` up to its
    noise draws: the first n // 2 rows on the upper moon, the other n - n // 2 on the lower one,
    each at evenly spaced angles linspace(0, pi, count) (tested against scikit-learn at noise 0);
    every call draws the same layout, only the noise is random."""
    grid = jnp.linspace(0, jnp.pi, 200)
    up, lo = _moon_arcs(grid)

    def sample(key, n):
        kt, km, kz = jax.random.split(key, 3)
        if o.layout == "sklearn":
            n_up = n // 2
            u, _ = _moon_arcs(jnp.linspace(0, jnp.pi, n_up))
            _, l = _moon_arcs(jnp.linspace(0, jnp.pi, n - n_up))
            return jnp.concatenate([u, l]) + o.noise * jax.random.normal(kz, (n, 2))
        theta = jax.random.uniform(kt, (n,), maxval=jnp.pi)
        which = jax.random.bernoulli(km, 0.5, (n,))
        u, l = _moon_arcs(theta)
        x = jnp.where(which[:, None], l, u)
        return x + o.noise * jax.random.normal(kz, (n, 2))

    def assign(x):
        du = jnp.min(jnp.sum((x[:, None] - up[None]) ** 2, -1), -1)
        dl = jnp.min(jnp.sum((x[:, None] - lo[None]) ** 2, -1), -1)
        return (dl < du).astype(jnp.int32)

    return Source(sample=sample, dim=2, assign=assign, num_modes=2)


# ---------------------------------------------------------------- circles

@dataclass(frozen=True)
class Circles:
    tag_key = "kind"
    name = "circles"
    dim = 2
    factor: float = static(0.5, "inner radius / outer radius (outer radius 1)", gt=0.0, lt=1.0)
    noise: float = static(0.05, "Gaussian noise added to each coordinate", ge=0.0, finite=True)



@register_source("circles", Circles)
def make_circles(o: Circles) -> Source:
    """Two concentric circles (as scikit-learn's make_circles); mode 0 outer, 1 inner."""

    def sample(key, n):
        kt, km, kz = jax.random.split(key, 3)
        theta = jax.random.uniform(kt, (n,), maxval=2 * jnp.pi)
        inner = jax.random.bernoulli(km, 0.5, (n,))
        r = jnp.where(inner, o.factor, 1.0)
        x = r[:, None] * jnp.stack([jnp.cos(theta), jnp.sin(theta)], -1)
        return x + o.noise * jax.random.normal(kz, (n, 2))

    def assign(x):
        r = jnp.linalg.norm(x, axis=-1)
        return (r < (1 + o.factor) / 2).astype(jnp.int32)

    return Source(sample=sample, dim=2, assign=assign, num_modes=2)


# ---------------------------------------------------------------- checkerboard

@dataclass(frozen=True)
class Checkerboard:
    tag_key = "kind"
    name = "checkerboard"
    dim = 2
    scale: float = static(2.0, "side of one square", gt=0.0, finite=True)


@register_source("checkerboard", Checkerboard)
def make_checkerboard(o: Checkerboard) -> Source:
    """Uniform on the 8 dark squares of a 4x4 board spanning [-2 scale, 2 scale]^2 (as FFJORD)."""

    def sample(key, n):
        k1, k2, k3 = jax.random.split(key, 3)
        x1 = jax.random.uniform(k1, (n,)) * 4 - 2
        x2 = jax.random.uniform(k2, (n,)) - 2.0 * jax.random.randint(k3, (n,), 0, 2)
        x2 = x2 + jnp.floor(x1) % 2
        return o.scale * jnp.stack([x1, x2], -1)

    def log_prob(x):
        u = x / o.scale
        inside = (jnp.abs(u[:, 0]) <= 2) & (jnp.abs(u[:, 1]) <= 2)
        dark = (jnp.floor(u[:, 0]) + jnp.floor(u[:, 1])) % 2 == 0
        return jnp.where(inside & dark, -jnp.log(8.0 * o.scale ** 2), -jnp.inf)

    return Source(sample=sample, dim=2, log_prob=log_prob)


# ---------------------------------------------------------------- swiss roll

@dataclass(frozen=True)
class SwissRoll:
    tag_key = "kind"
    name = "swiss_roll"
    dim = 2
    noise: float = static(0.25, "Gaussian noise (before the 1/5 scaling, as FFJORD's noise=1 is 0.2 after)",
                          ge=0.0, finite=True)


@register_source("swiss_roll", SwissRoll)
def make_swiss_roll(o: SwissRoll) -> Source:
    """2-D swiss roll t (cos t, sin t) / 5, t ~ U(1.5 pi, 4.5 pi)."""

    def sample(key, n):
        kt, kz = jax.random.split(key)
        t = 1.5 * jnp.pi * (1 + 2 * jax.random.uniform(kt, (n,)))
        x = jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], -1)
        return (x + o.noise * jax.random.normal(kz, (n, 2))) / 5.0

    return Source(sample=sample, dim=2)
