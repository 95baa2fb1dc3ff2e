"""Self-correction: move synthetic rows toward the true distribution before they are mixed.

A corrector maps the kept synthetic rows [rows, ...] to corrected rows of the same shape:

  ideal       (Gillman et al., ICLR 2024, idealised corrector of strength gamma) each row is
              replaced by a fresh truth row with probability gamma / (1 + gamma), so the corrected
              law is (p_t + gamma p_data) / (1 + gamma). ``gamma`` is a vmapped knob.
  projection  x <- x + strength (P(x) - x) with P a map onto a constraint set (category or
              (x, y) rows, ``onto: custom`` only: P applied to each row w.p. strength): ``onto: circle``
              (radius, centre), ``box`` (low, high), or ``custom`` (``function``: P of ONE row, a
              callable or an import path "module:function"). ``strength`` in [0, 1] is a knob.
  kmeans      x <- x + strength (c(x) - x) with c(x) the nearest of ``k`` k-means centres fitted
              on the real data. The centres are fitted (k-means++ then ``iterations`` Lloyd steps)
              on exactly the ``loop.n`` real rows of generation 0 of the same seed (regenerated
              from the seed's root key each generation, so no extra loop state is needed).

THEORY.md section 6: with lambda = #synthetic/#real and a fixed real set, the idealised corrector
turns the population-level contraction lambda/(1+lambda) into lambda / ((1+lambda)(1+gamma)).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Literal, NamedTuple, Optional

import jax
import jax.numpy as jnp

from scl.config import check_range, knob, static
from scl.errors import ConfigError
from scl.registry import register_corrector
from scl.rewards import resolve_callable

tree_map = jax.tree_util.tree_map


class Corrector(NamedTuple):
    """correct(keys, rows [rows, ...], knobs {name: value}) -> rows [rows, ...].
    ``keys`` is the generation's key dict (uses keys["correct"]; kmeans also keys["root"])."""

    correct: Callable


@dataclass(frozen=True)
class IdealCorrection:
    """``correction: {kind: ideal, gamma}``."""

    tag_key = "kind"
    name = "ideal"
    gamma: float = knob(1.0, "strength: a row is replaced by a truth row w.p. gamma/(1+gamma)")

    def validate(self, path):
        check_range(f"{path}.gamma", self.gamma, 0.0)
        if math.isinf(self.gamma):
            raise ConfigError(f"{path}.gamma", "must be finite (gamma = inf means fully real data)")

    def knob_values(self) -> dict:
        return {"gamma": self.gamma}


@dataclass(frozen=True)
class ProjectionCorrection:
    """``correction: {kind: projection, onto: circle | box | custom, strength, ...}``."""

    tag_key = "kind"
    name = "projection"
    onto: Literal["circle", "box", "custom"] = static("circle", "the constraint set")
    strength: float = knob(1.0, "0 = no change, 1 = full projection")
    radius: float = static(1.0, "circle: radius")
    centre: Optional[tuple[float, ...]] = static(None, "circle: centre (default the origin)")
    low: Optional[tuple[float, ...]] = static(None, "box: lower corner")
    high: Optional[tuple[float, ...]] = static(None, "box: upper corner")
    function: Any = static(None, "custom: P(one row) -> row, callable or 'module:function'")

    def validate(self, path):
        check_range(f"{path}.strength", self.strength, 0.0, 1.0)
        if self.onto == "circle":
            check_range(f"{path}.radius", self.radius, 0.0, lo_open=True)
        if self.onto == "box":
            if self.low is None or self.high is None or len(self.low) != len(self.high):
                raise ConfigError(f"{path}.low", "onto: box needs low and high of the same length")
            if any(h < l for l, h in zip(self.low, self.high)):
                raise ConfigError(f"{path}.high", "must be >= low in every coordinate")
        if self.onto == "custom":
            resolve_callable(self.function, f"{path}.function")

    def check(self, cfg):
        from scl.data import make_source

        if self.onto != "custom":
            _require_vector_rows(cfg, f"projection onto a {self.onto}")
        dim = make_source(cfg.truth).dim
        lengths = {"centre": self.centre} if self.onto == "circle" else \
            {"low": self.low} if self.onto == "box" else {}
        for key, v in lengths.items():
            if v is not None and len(v) != dim:
                raise ConfigError(f"correction.{key}", f"needs {dim} entries (the truth's dimension), got {len(v)}")

    def knob_values(self) -> dict:
        return {"strength": self.strength}


def _require_vector_rows(cfg, kind: str):
    """Projection and snapping move points in space: refuse category or (x, y) rows by name."""
    from scl.families.weighted import truth_rows

    rows = truth_rows(cfg.truth)
    if rows != "vector":
        raise ConfigError("correction.kind", f"{kind!r} moves vector rows; truth {cfg.truth.name!r} has "
                          f"{rows} rows (use kind: ideal, or projection with onto: custom)")


@dataclass(frozen=True)
class KMeansCorrection:
    """``correction: {kind: kmeans, k, strength, iterations}``."""

    tag_key = "kind"
    name = "kmeans"
    k: int = static(8, "number of k-means centres fitted on the generation-0 real rows")
    strength: float = knob(1.0, "0 = no change, 1 = snap to the nearest centre")
    iterations: int = static(25, "Lloyd iterations after k-means++ seeding")

    def validate(self, path):
        if self.k < 1:
            raise ConfigError(f"{path}.k", f"must be >= 1, got {self.k}")
        if self.iterations < 0:
            raise ConfigError(f"{path}.iterations", f"must be >= 0, got {self.iterations}")
        check_range(f"{path}.strength", self.strength, 0.0, 1.0)

    def check(self, cfg):
        _require_vector_rows(cfg, "kmeans")
        if self.k > cfg.loop.n:
            raise ConfigError("correction.k", f"must be <= loop.n ({cfg.loop.n}) real rows, got {self.k}")

    def knob_values(self) -> dict:
        return {"strength": self.strength}


# ----------------------------------------------------------------------------- the maps

def replace_by_truth(key, rows, truth_sample, gamma):
    """Each row replaced by a fresh truth row w.p. gamma/(1+gamma). rows: [n, ...]."""
    kb, ks = jax.random.split(key)
    n = jax.tree_util.tree_leaves(rows)[0].shape[0]
    swap = jax.random.bernoulli(kb, gamma / (1.0 + gamma), (n,))
    fresh = truth_sample(ks, n)

    def pick(a, b):
        return jnp.where(swap.reshape((n,) + (1,) * (a.ndim - 1)), b.astype(a.dtype), a)
    return tree_map(pick, rows, fresh)


def project_circle(x, radius, centre):
    """Radial projection of rows x [n, d] onto the sphere |x - centre| = radius."""
    d = x - centre
    norm = jnp.linalg.norm(d, axis=-1, keepdims=True)
    unit = jnp.where(norm > 0, d / jnp.where(norm > 0, norm, 1.0), jnp.eye(x.shape[-1])[0])
    return centre + radius * unit


def kmeans(key, x, k: int, iterations: int):
    """k-means++ seeding then at most ``iterations`` Lloyd steps (fewer once the assignment stops
    changing): ott-jax's ``k_means`` with one initialisation. x: [n, d] -> centres [k, d].
    Pure and vmappable; an emptied cluster is moved to a far point (ott's reallocation)."""
    from ott.geometry.pointcloud import PointCloud
    from ott.tools import k_means as ott_k_means

    if iterations == 0:
        # ott's k_means needs max_iterations >= 1: its own seeding, from the key k_means gives it
        seeds = ott_k_means._k_means_plus_plus(PointCloud(x), k, jax.random.split(key, 1)[0])
        return seeds.astype(x.dtype)
    out = ott_k_means.k_means(x, k, init="k-means++", n_init=1, tol=0.0, min_iterations=0,
                              max_iterations=iterations, rng=key)
    return out.centroids.astype(x.dtype)


def nearest(x, centres):
    """[n] index of the nearest centre for rows x [n, d]."""
    return jnp.argmin(jnp.sum((x[:, None] - centres[None]) ** 2, -1), -1)


# ----------------------------------------------------------------------------- registration

@register_corrector("ideal", IdealCorrection)
def make_ideal(o: IdealCorrection, source, cfg) -> Corrector:
    """Idealised corrector: replace by a truth row w.p. gamma/(1+gamma)."""
    def correct(keys, rows, knobs):
        return replace_by_truth(keys["correct"], rows, source.sample, knobs["gamma"])
    return Corrector(correct)


@register_corrector("projection", ProjectionCorrection)
def make_projection(o: ProjectionCorrection, source, cfg) -> Corrector:
    """Move rows toward their projection onto a constraint set."""
    if o.onto == "circle":
        centre = jnp.zeros((source.dim,)) if o.centre is None else jnp.asarray(o.centre, jnp.float32)
        project = lambda x: project_circle(x, o.radius, centre)
    elif o.onto == "box":
        lo, hi = jnp.asarray(o.low, jnp.float32), jnp.asarray(o.high, jnp.float32)
        project = lambda x: jnp.clip(x, lo, hi)
    else:
        project = jax.vmap(resolve_callable(o.function, "correction.function"))

    from scl.families.weighted import truth_rows

    vector = truth_rows(cfg.truth) == "vector"

    def correct(keys, rows, knobs):
        if vector:
            return rows + knobs["strength"] * (project(rows) - rows)
        # category indices or (x, y) pairs cannot be moved part-way: each row is mapped with
        # probability ``strength`` (the same law on average; strength 1 maps every row)
        n = jax.tree_util.tree_leaves(rows)[0].shape[0]
        hit = jax.random.bernoulli(keys["correct"], knobs["strength"], (n,))
        mapped = project(rows)
        return jax.tree_util.tree_map(
            lambda new, old: jnp.where(hit.reshape((n,) + (1,) * (old.ndim - 1)), new.astype(old.dtype), old),
            mapped, rows)
    return Corrector(correct)



@register_corrector("kmeans", KMeansCorrection)
def make_kmeans(o: KMeansCorrection, source, cfg) -> Corrector:
    """Snap rows toward the nearest k-means centre of the generation-0 real rows."""
    from scl.engine import generation_keys

    n = cfg.loop.n

    def centres_for(root_key):
        k0 = generation_keys(root_key, 0)
        real = source.sample(k0["real"], n)   # exactly generation 0's real rows
        return kmeans(jax.random.fold_in(k0["spare"], 1), real, o.k, o.iterations)

    def correct(keys, rows, knobs):
        c = centres_for(keys["root"])
        return rows + knobs["strength"] * (c[nearest(rows, c)] - rows)
    return Corrector(correct)


def make_corrector(options, source, cfg) -> Corrector:
    from scl.registry import CORRECTORS

    return CORRECTORS[options.name].make(options, source, cfg)
