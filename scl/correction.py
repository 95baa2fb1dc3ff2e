"""Self-correction stages: move synthetic rows toward the true distribution before they are mixed.

A corrector is a :class:`scl.stages.Stage` mapping the kept synthetic rows [rows, ...] (and
their weights, passed through) to corrected rows of the same shape:

  ideal       (Gillman et al., ICLR 2024, idealised corrector of strength gamma) each row is
              replaced by a fresh truth row with probability gamma / (1 + gamma), so the corrected
              law is (p_t + gamma p_data) / (1 + gamma). ``gamma`` is a vmapped knob.
  projection  x <- x + strength (P(x) - x) with P a map onto a constraint set (category or
              (x, y) rows, ``onto: custom`` only: P applied to each row w.p. strength): ``onto: circle``
              (radius, centre), ``box`` (low, high), or ``custom`` (``function``: P of ONE row, a
              callable or an import path "module:function"). ``strength`` in [0, 1] is a knob.
  kmeans      x <- x + strength (c(x) - x) with c(x) the nearest of ``k`` k-means centres fitted
              once, when the stage is initialised, on the ``loop.n`` real rows of generation 0;
              the centres are the stage's state (carried by the loop and its checkpoints).

THEORY.md section 6: with lambda = #synthetic/#real and a fixed real set, the idealised corrector
turns the population-level contraction lambda/(1+lambda) into lambda / ((1+lambda)(1+gamma)).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Optional

import jax
import jax.numpy as jnp

from scl.errors import ConfigError
from scl.families.weighted import truth_rows
from scl.options import knob, static
from scl.registry import register_corrector
from scl.rewards import resolve_callable, traced_row_function
from scl.stages import Stage, no_state

tree_map = jax.tree_util.tree_map


@dataclass(frozen=True)
class IdealCorrection:
    """``correction: {kind: ideal, gamma}``."""

    tag_key = "kind"
    name = "ideal"
    gamma: float = knob(1.0, "strength: a row is replaced by a truth row w.p. gamma/(1+gamma) "
                        "(finite: gamma = inf means fully real data)", ge=0.0)


@dataclass(frozen=True)
class ProjectionCorrection:
    """``correction: {kind: projection, onto: circle | box | custom, strength, ...}``."""

    tag_key = "kind"
    name = "projection"
    onto: Literal["circle", "box", "custom"] = static("circle", "the constraint set")
    strength: float = knob(1.0, "0 = no change, 1 = full projection", ge=0.0, le=1.0)
    radius: float = static(1.0, "circle: radius", gt=0.0, finite=True)
    centre: Optional[tuple[float, ...]] = static(None, "circle: centre (default the origin)")
    low: Optional[tuple[float, ...]] = static(None, "box: lower corner")
    high: Optional[tuple[float, ...]] = static(None, "box: upper corner")
    function: Any = static(None, "custom: P(one row) -> row, callable or 'module:function'")

    def validate(self, path):
        if self.onto == "box":
            if self.low is None or self.high is None or len(self.low) != len(self.high):
                raise ConfigError(f"{path}.low", "onto: box needs low and high of the same length")
            if any(h < l for l, h in zip(self.low, self.high)):
                raise ConfigError(f"{path}.high", "must be >= low in every coordinate")
        if self.onto == "custom":
            resolve_callable(self.function, f"{path}.function")

    def check(self, cfg):
        if self.onto != "custom":
            _require_vector_rows(cfg, f"projection onto a {self.onto}")
        dim = cfg.truth.dim
        lengths = {"centre": self.centre} if self.onto == "circle" else \
            {"low": self.low} if self.onto == "box" else {}
        for key, v in lengths.items():
            if v is not None and len(v) != dim:
                raise ConfigError(f"correction.{key}", f"needs {dim} entries (the truth's dimension), got {len(v)}")


def _require_vector_rows(cfg, kind: str):
    """Projection and snapping move points in space: refuse category or (x, y) rows by name."""
    rows = truth_rows(cfg.truth)
    if rows != "vector":
        raise ConfigError("correction.kind", f"{kind!r} moves vector rows; truth {cfg.truth.name!r} has "
                          f"{rows} rows (use kind: ideal, or projection with onto: custom)")


@dataclass(frozen=True)
class KMeansCorrection:
    """``correction: {kind: kmeans, k, strength, iterations}``."""

    tag_key = "kind"
    name = "kmeans"
    k: int = static(8, "number of k-means centres fitted on the generation-0 real rows", ge=1)
    strength: float = knob(1.0, "0 = no change, 1 = snap to the nearest centre", ge=0.0, le=1.0)
    iterations: int = static(25, "Lloyd iterations after k-means++ seeding", ge=0)

    def check(self, cfg):
        _require_vector_rows(cfg, "kmeans")
        if self.k > cfg.loop.n:
            raise ConfigError("correction.k", f"must be <= loop.n ({cfg.loop.n}) real rows, got {self.k}")


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

def _stateless(correct) -> Stage:
    """A corrector without state: ``correct(key, rows, knobs) -> rows`` (weights passed through)."""
    def apply(key, state, rows, w, knobs):
        return state, correct(key, rows, knobs), w
    return Stage(no_state, apply)


@register_corrector("ideal", IdealCorrection)
def make_ideal(o: IdealCorrection, ctx) -> Stage:
    """Idealised corrector: replace by a truth row w.p. gamma/(1+gamma)."""
    return _stateless(lambda key, rows, knobs: replace_by_truth(key, rows, ctx.source.sample, knobs["gamma"]))


@register_corrector("projection", ProjectionCorrection)
def make_projection(o: ProjectionCorrection, ctx) -> Stage:
    """Move rows toward their projection onto a constraint set."""
    if o.onto == "circle":
        centre = jnp.zeros((ctx.source.dim,)) if o.centre is None else jnp.asarray(o.centre, jnp.float32)
        project = lambda x: project_circle(x, o.radius, centre)
    elif o.onto == "box":
        lo, hi = jnp.asarray(o.low, jnp.float32), jnp.asarray(o.high, jnp.float32)
        project = lambda x: jnp.clip(x, lo, hi)
    else:
        project = jax.vmap(traced_row_function(resolve_callable(o.function, "correction.function"), o.function,
                                               "correction.function", "row"))
    vector = truth_rows(ctx.truth) == "vector"

    def correct(key, rows, knobs):
        if vector:
            return rows + knobs["strength"] * (project(rows) - rows)
        # category indices or (x, y) pairs cannot be moved part-way: each row is mapped with
        # probability ``strength`` (the same law on average; strength 1 maps every row)
        n = jax.tree_util.tree_leaves(rows)[0].shape[0]
        hit = jax.random.bernoulli(key, knobs["strength"], (n,))
        mapped = project(rows)
        return jax.tree_util.tree_map(
            lambda new, old: jnp.where(hit.reshape((n,) + (1,) * (old.ndim - 1)), new.astype(old.dtype), old),
            mapped, rows)
    return _stateless(correct)


@register_corrector("kmeans", KMeansCorrection)
def make_kmeans(o: KMeansCorrection, ctx) -> Stage:
    """Snap rows toward the nearest k-means centre of the generation-0 real rows (the centres
    are fitted once, by ``init``, and kept in the stage's state)."""

    def init(key, real):
        return kmeans(key, real, o.k, o.iterations)          # [k, d]

    def apply(key, centres, rows, w, knobs):
        return centres, rows + knobs["strength"] * (centres[nearest(rows, centres)] - rows), w
    return Stage(init, apply)


def make_corrector(options, ctx) -> Stage:
    from scl.registry import CORRECTORS

    return CORRECTORS[options.name].make(options, ctx)
